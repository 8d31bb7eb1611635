"""The loopback shim: an LD_PRELOAD library that keeps native lab peers on loopback.

Orthanc 1.10, DCMTK 3.6.7 and MIR CTN have no option to choose a listening address and
bind 0.0.0.0; the shim turns wildcard binds into binds to ``DICOMSCAN_LAB_ADDR`` (a
127.x address, default 127.0.0.1) and refuses binds, connects and sends elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from scanner.lab.errors import PeerStartError

_SHIM_SOURCE = r"""
/* dicomscan lab: keep a peer on loopback. Wildcard binds become loopback binds;
   binding to, connecting to or sending datagrams to other addresses fails. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*addr_fn)(int, const struct sockaddr *, socklen_t);
typedef ssize_t (*sendto_fn)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);
static addr_fn real_bind, real_connect;
static sendto_fn real_sendto;
static sendmsg_fn real_sendmsg;
static in_addr_t lab_addr; /* where wildcard binds go: DICOMSCAN_LAB_ADDR or 127.0.0.1 */

__attribute__((constructor)) static void init(void) {
    real_bind = (addr_fn)dlsym(RTLD_NEXT, "bind");
    real_connect = (addr_fn)dlsym(RTLD_NEXT, "connect");
    real_sendto = (sendto_fn)dlsym(RTLD_NEXT, "sendto");
    real_sendmsg = (sendmsg_fn)dlsym(RTLD_NEXT, "sendmsg");
    const char *want = getenv("DICOMSCAN_LAB_ADDR");
    struct in_addr parsed;
    lab_addr = htonl(INADDR_LOOPBACK);
    if (want != NULL && inet_pton(AF_INET, want, &parsed) == 1
        && (ntohl(parsed.s_addr) >> 24) == 127)
        lab_addr = parsed.s_addr;
}

static int loopback4(const struct in_addr *a) { return (ntohl(a->s_addr) >> 24) == 127; }

static int loopback6(const struct in6_addr *a) {
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

static int allowed(const struct sockaddr *addr, socklen_t len) {
    if (addr == NULL) return 1;
    if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in))
        return loopback4(&((const struct sockaddr_in *)addr)->sin_addr);
    if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6))
        return loopback6(&((const struct sockaddr_in6 *)addr)->sin6_addr);
    return 1; /* AF_UNIX, AF_NETLINK, AF_UNSPEC, ... */
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    if (addr != NULL && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in a;
        memcpy(&a, addr, sizeof a);
        if (a.sin_addr.s_addr == htonl(INADDR_ANY)) a.sin_addr.s_addr = lab_addr;
        if (!loopback4(&a.sin_addr)) { errno = EADDRNOTAVAIL; return -1; }
        return real_bind(fd, (const struct sockaddr *)&a, sizeof a);
    }
    if (addr != NULL && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 a;
        memcpy(&a, addr, sizeof a);
        if (IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr)) a.sin6_addr = in6addr_loopback;
        if (!loopback6(&a.sin6_addr)) { errno = EADDRNOTAVAIL; return -1; }
        return real_bind(fd, (const struct sockaddr *)&a, sizeof a);
    }
    return real_bind(fd, addr, len);
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    if (!allowed(addr, len)) { errno = ENETUNREACH; return -1; }
    return real_connect(fd, addr, len);
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags,
               const struct sockaddr *addr, socklen_t len) {
    if (!allowed(addr, len)) { errno = ENETUNREACH; return -1; }
    return real_sendto(fd, buf, n, flags, addr, len);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
    if (msg != NULL && !allowed((const struct sockaddr *)msg->msg_name, msg->msg_namelen)) {
        errno = ENETUNREACH;
        return -1;
    }
    return real_sendmsg(fd, msg, flags);
}
"""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dicomscan"


@cache
def loopback_shim() -> Path:
    """Build (once per source version) and return the LD_PRELOAD library described above."""
    digest = hashlib.sha256(_SHIM_SOURCE.encode()).hexdigest()[:16]
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    errors: list[str] = []
    for directory in (_cache_dir(), Path(tempfile.gettempdir()) / f"dicomscan-{os.getuid()}"):
        target = directory / f"loopback-{digest}.so"
        if target.is_file():
            return target
        if compiler is None:
            continue
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=directory) as build:
                source = Path(build) / "loopback.c"
                source.write_text(_SHIM_SOURCE)
                built = Path(build) / "loopback.so"
                result = subprocess.run(
                    [compiler, "-shared", "-fPIC", "-O2", "-o", str(built), str(source), "-ldl"],
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                if result.returncode != 0:
                    errors.append(result.stderr.strip())
                    continue
                # Atomic rename: parallel test workers may build at the same time.
                os.replace(built, target)
            return target
        except (OSError, subprocess.SubprocessError) as exc:
            errors.append(f"{directory}: {exc}")
    if compiler is None:
        errors.append("no C compiler (cc, gcc or clang) on PATH")
    raise PeerStartError(
        "loopback-shim",
        "cannot build the LD_PRELOAD library that keeps native peers off non-loopback "
        "addresses (they would otherwise listen on 0.0.0.0): " + "; ".join(errors),
    )

"""The scan engine: targets and scope, port lists, profiles, discovery, the nmap engine,
the probe registry and the ``ScanJob`` that runs them (``job``)."""

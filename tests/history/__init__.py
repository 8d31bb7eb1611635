"""The scan history: store, drift, site configuration and timers."""

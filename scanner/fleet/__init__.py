"""Many sites, one view: sensors inside imaging VLANs dial out to a central nats-server
(JetStream, mutual TLS), pull scan jobs, run them with the engine, and central stores
their results in the history exactly once. Above the engine and the history, below the
command line."""

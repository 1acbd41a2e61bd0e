"""modeld_sim: a faithful simulator of the modeld daemon (lease owner, strict gRPC server, engines)."""

"""The interfaces that serve the platform over the network: HTTP (``server.http``) and the PostgreSQL wire protocol."""

"""Training deep algorithms: the engine, batch sampling and the deep experiment."""

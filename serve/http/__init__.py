"""What every protocol shares over HTTP: dependencies, error rendering, middleware, security, health,
schemas and limits."""

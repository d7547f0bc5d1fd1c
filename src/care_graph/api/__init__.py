"""The GraphQL API: types declared once, served by a SQL compiler with a resolver fallback."""

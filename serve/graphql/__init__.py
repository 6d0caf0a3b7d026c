"""``/graphql`` (strawberry-graphql on Litestar, GraphiQL): queries mirroring REST, mutations, and
subscriptions over ``graphql-transport-ws``, with the REST credentials, scopes and rate limits."""

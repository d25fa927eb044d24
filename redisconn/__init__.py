"""How every process opens Redis (``redisconn.clients``): one home, below the roles, for the
three topologies REDIS_MODE names, so the service, precompute, the refresher and the
experiments all follow a failover the same way."""

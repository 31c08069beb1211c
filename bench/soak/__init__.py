"""`make soak`: the platform as real processes on real infrastructure for a bounded time, mixed
traffic through the gateway at a set rate, faults on a schedule, and a plain-text report.

- `bench.soak.run`: the command line and the schedule (`python -m bench.soak --minutes 5`);
- `bench.soak.infra`: what the soak starts and stops itself: a throwaway redis-server, HAProxy
  (the load balancer of `--replicas 2`), the SMTP sink counting per recipient, a RabbitMQ tap
  counting every event published, RSS sampling;
- `bench.soak.fleet`: the service processes (one or two replicas of each);
- `bench.soak.traffic`: the accounts, their sessions and every token of every ended session, and
  the kinds of traffic (one small function each, registered with `@flow`);
- `bench.soak.report`: the report.

Only loopback addresses; every loop bounded in count or time; faults only on processes the soak
started itself (its own Redis, its own service processes, by their Popen handles).
"""

"""`make soak`: the platform as real processes on real infrastructure for a bounded time, mixed
traffic through the gateway at a set rate, faults on a schedule, and a plain-text report.

Run: `make soak` (5 minutes), `make soak MINUTES=1`, `make soak ARGS="--replicas 2"`, or
`uv run python -m bench.soak --help`. The report is printed at the end and saved as
`var/soak-<UTC time>/report.txt`, with every process's log beside it.

What it starts: fresh PostgreSQL databases and a throwaway RabbitMQ vhost on the machine's
servers (as `make bench` does), a redis-server of its own on a spare port with no persistence (so
a restart empties it), an SMTP sink and the four services as processes (`python -m <service>
serve`); with `--replicas 2`, two of each behind HAProxy on loopback.

What it does:
- traffic: flows started at `--rate` per second, drawn by weight: registrations, logins, `/me`,
  refreshes, logouts, password changes (right after a refresh, so the fresh token and the change
  share a second), password resets where the build offers them; each from one of 32 loopback
  source addresses (the per-IP limits see many clients);
- faults (`--replicas 1`), at 15/35/55/75 % of the run: Redis stopped and started empty;
  notifier killed with SIGKILL and restarted; users killed with SIGKILL and restarted; auth
  restarted (SIGTERM). The traffic goes on until the last fault is over;
- rolling restarts (`--replicas 2`): each service's replicas replaced one at a time, as a
  Deployment's rolling update (maxSurge 1, maxUnavailable 0): a new process on a spare port, in
  HAProxy's rotation once its `/ready` passes, then the old one SIGTERMed (it drains); services
  back to back; then the login limit checked across the two gateways;
- every token of every ended session (logout, password change, reset) is kept, a sample probed
  through the gateway each second, all of them once more at the end.

The report: per-route status counts and p50/p99; per fault, each route's failures and the time
to its first good answer; 5xx (and unanswered requests) inside vs outside fault windows, and what
they said; ended tokens accepted again; live tokens refused; welcome emails lost or duplicated
per recipient; events published more than once (a queue of the soak's own on the exchange); RSS
of every process every 30 s with its least-squares slope; a verdict listing every problem.

Modules: `run` (command line, schedule, report assembly), `infra` (Redis, HAProxy, SMTP sink,
event tap, RSS), `fleet` (service processes), `traffic` (accounts, sessions, ended tokens, the
kinds of traffic: a new one is one function decorated with `@flow(weight)`), `report`.

Only loopback addresses; every loop bounded in count or time; faults only on processes the soak
started itself (its own Redis, its own service processes, by their Popen handles).
"""

"""Virtual keys, teams, rate limits and budgets: who may call, for what, and how much.

records.py (keys and teams as stored), registry.py (all of them in memory, reloaded on
change), rules.py (limits as the limiter applies them), scripts.py (the Redis scripts),
limiter.py (reserve / settle on Redis, batched), local.py (the same in memory: no Redis, or
Redis down), governor.py (a request's rules, its estimate, the decision), service.py (the assembly).
"""

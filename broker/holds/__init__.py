"""Holds: the consortium's hold rules as data (policy), calendar and schedule arithmetic, and the planner.

`policy` is the schema of the `policy` tables in consortium files; `calendar` and `schedule` are pure
date arithmetic over it; `planner` decides (pure, synchronous); `gather` asks the members (async);
`routes` and `cli` expose a plan.
"""

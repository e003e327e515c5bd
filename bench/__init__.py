"""Billfold's benchmark suite: ``python -m bench`` (``make bench``).

Three benchmarks, each run against a fresh database per backend (SQLite in a temporary
directory; PostgreSQL in a throw-away ``billfold_bench_<random>`` database that is always
dropped afterwards):

* ``service_create`` - customers with two billing accounts each, created through the
  service layer, 100 customers (200 accounts) per transaction. Target >= 2,000 accounts/s.
* ``http_create`` - POST /v1/customers from 8 keep-alive clients against a real
  ``billfold serve --no-worker`` on 127.0.0.1. Target p99 <= 50 ms.
* ``search`` - prefix queries on GET /v1/billing_accounts and GET /v1/customers over a
  tenant with 100,000 billing accounts. Target p95 <= 20 ms.

Results go to ``bench/results/<timestamp>.json`` and ``bench/results/latest.json``.
"""

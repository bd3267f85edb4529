"""Benchmarks: a seeded Missouri workload, the geo join against PostGIS, index rebuild and memory."""

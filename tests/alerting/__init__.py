"""Tests of the alert rules, Alertmanager routing and the Grafana dashboard."""

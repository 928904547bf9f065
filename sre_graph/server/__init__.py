"""The sre-graph service: alert webhooks, the Slack app, the incident store."""

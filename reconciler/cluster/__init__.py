"""The Kubernetes side: the API adapter, rollout watching and diagnosis, Secrets, providers."""

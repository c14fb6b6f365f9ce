"""Code rollout: a node that follows a git checkout updates, reinstalls and restarts itself on request."""

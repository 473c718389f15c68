"""One reconcile cycle: observe once, decide one state (pure), run its action, conclude."""

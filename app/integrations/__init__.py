"""Where an outside system's events are routed to the areas that own them (they call down;
areas never register themselves): the chain watcher's confirmed transfers and the settlement
signer's finished submissions (``app.integrations.chain``)."""

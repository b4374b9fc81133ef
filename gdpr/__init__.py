"""InfRef requests, InfRefs, GDPR declarations, their PDF and the mail to KOMBIT."""

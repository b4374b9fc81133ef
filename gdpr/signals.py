from django.dispatch import Signal

# Sent with `infref=` whenever an InfRef's process moves: a declaration submitted or outdated,
# or the InfRef created on Serviceplatformen. Onboarding follows it (tasks 30 and 40).
infref_changed = Signal()

"""Alert streams over Kafka: the alert listener (``skydriver alerts listen``, :mod:`.listener`).

Notices going out are a reconciler step (``skydriver_api.reconciler.notices``); the simulator of
alert streams that tests both is ``skydriver_api.alertsim``.
"""

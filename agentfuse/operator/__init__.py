"""The operator's tools, run by the ``agentfuse`` command and never by an agent process: ``status``,
``runs``, ``watch``, ``report``, ``halt``/``resume``, ``reconcile``, ``store``, ``metrics``,
``prices``, ``check-policy`` and ``init``. They read and write the runtime's stores; the runtime
never imports them."""

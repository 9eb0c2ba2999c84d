"""Reminders, work queues and the missed-survey sweep (PRODUCT.md step 7).

How it fits together (see surveys/tasks.py for the Celery side):

- Reminder rows are created lazily by the sweep, never at planning time: every minute `reminders_plan_due`
  inserts (get-or-create, `reminder_once_per_stage`) the stages of the protocol's `reminders.stages` that have
  come due for instances that are open, unanswered and whose participant has not withdrawn. Instance planning
  (surveys.services.schedule) therefore needs no knowledge of reminders, and a re-planned or cancelled
  instance simply never gets rows.
- `reminders_claim_due` claims pending rows in short transactions (`select_for_update(skip_locked=True)`),
  marks them `queued` and publishes one small task per reminder after commit. A row stuck in `queued`
  (its message was lost, e.g. Redis lost its data) is re-published after `REMINDER_REQUEUE_AFTER`.
- The send task re-checks everything under lock (`reminder_send_prepare`), commits a `ReminderDelivery`
  claim row, calls the channel with the reminder's uuid as idempotency key, then records the result.
"""

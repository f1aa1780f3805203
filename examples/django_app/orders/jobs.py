"""The orders app's job handlers, registered on the project's Bananas app.

Plain functions: the worker runs them in its thread pool, where the ORM may
be used directly (an `async def` handler would need `sync_to_async`). A job
gets ids, never model instances: the payload is JSON, and the row is read
fresh when the job runs.
"""

from __future__ import annotations

from django.core.mail import send_mail
from django.utils import timezone
from shop.jobs import app

from .models import Order


@app.job(max_retries=5, timeout="1m")
def send_receipt(order_id: int) -> dict[str, int]:
    order = Order.objects.select_related("product").get(pk=order_id)
    if order.receipt_sent_at is None:  # a retried job sends once
        send_mail(
            subject=f"Your order #{order.pk}",
            message=f"{order.quantity} x {order.product.name}. Thank you!",
            from_email=None,
            recipient_list=[order.email],
        )
        Order.objects.filter(pk=order.pk).update(receipt_sent_at=timezone.now())
    return {"order_id": order.pk}

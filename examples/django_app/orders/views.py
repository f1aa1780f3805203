"""Placing an order: the receipt is enqueued only once the order is committed.

`transaction.on_commit` runs the enqueue after the COMMIT, so the worker
never gets a job for an order it cannot read yet (the job would start before
the commit) or for one that was rolled back (the job would act on a row that
never existed, or on a later one that reused its id).
"""

from __future__ import annotations

import json

from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .jobs import send_receipt
from .models import Order, Product


class OutOfStock(Exception):
    pass


@csrf_exempt  # a JSON API for programs; a browser form would keep CSRF protection
@require_POST
def create_order(request: HttpRequest) -> JsonResponse:
    try:
        body = json.loads(request.body)
        product = Product.objects.get(name=body["product"])
        quantity, email = int(body["quantity"]), str(body["email"])
    except (ValueError, KeyError, TypeError, Product.DoesNotExist):
        return JsonResponse({"error": "give product, quantity and email"}, status=400)
    try:
        with transaction.atomic():
            order = Order.objects.create(product=product, quantity=quantity, email=email)
            transaction.on_commit(lambda: send_receipt.enqueue(order_id=order.pk))
            reserved = Product.objects.filter(pk=product.pk, stock__gte=quantity).update(
                stock=F("stock") - quantity
            )
            if not reserved:
                raise OutOfStock  # rolls the order back: no receipt is enqueued
    except OutOfStock:
        return JsonResponse({"error": f"not enough {product.name} in stock"}, status=409)
    return JsonResponse({"id": order.pk}, status=201)


@require_GET
def order_detail(request: HttpRequest, order_id: int) -> JsonResponse:
    order = get_object_or_404(Order, pk=order_id)
    return JsonResponse(
        {
            "id": order.pk,
            "product": order.product.name,
            "quantity": order.quantity,
            "receipt_sent": order.receipt_sent_at is not None,
        }
    )

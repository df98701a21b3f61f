from django.urls import path

from conversations.consumers import InboxConsumer
from crm.consumers import NotificationConsumer

websocket_urlpatterns = [
    path("ws/inbox/", InboxConsumer.as_asgi()),
    path("ws/notifications/", NotificationConsumer.as_asgi()),
]

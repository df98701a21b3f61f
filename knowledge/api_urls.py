"""API v1 routes of knowledge (mounted under /api/v1/ on tenant hosts)."""

from rest_framework.routers import SimpleRouter

from knowledge import api

router = SimpleRouter()
router.register("knowledge/documents", api.DocumentViewSet, basename="api-knowledge-document")
router.register("knowledge/faqs", api.FaqViewSet, basename="api-knowledge-faq")

urlpatterns = router.urls

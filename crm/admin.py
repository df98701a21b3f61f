from django.contrib import admin

from crm.models import Agent, Contact, Tag, Team


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["user", "role", "availability", "created_at"]
    list_filter = ["role", "availability"]
    search_fields = ["user__email", "user__first_name", "user__last_name"]
    list_select_related = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    filter_horizontal = ["members"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "color"]
    search_fields = ["name"]


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["name", "phone", "email", "last_inbound_at", "created_at"]
    search_fields = ["name", "phone", "email"]
    autocomplete_fields = ["tags"]

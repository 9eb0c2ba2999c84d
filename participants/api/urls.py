"""/api/v1/ routes of the participants app (participant phone API and staff API)."""

from django.urls import path

from trialsite.api.staff_token import StaffTokenApi

from . import views

app_name = "participants"

urlpatterns = [
    path("enrol", views.EnrolApi.as_view(), name="enrol"),
    path("logout", views.LogoutApi.as_view(), name="logout"),
    path("me", views.MeApi.as_view(), name="me"),
    path("consent", views.ConsentApi.as_view(), name="consent"),
    path("withdraw", views.WithdrawApi.as_view(), name="withdraw"),
    path("push/vapid-key", views.PushVapidKeyApi.as_view(), name="push-vapid-key"),
    path("push/subscription", views.PushSubscriptionApi.as_view(), name="push-subscription"),
    path("staff/token", StaffTokenApi.as_view(), name="staff-token"),
    path("staff/participants", views.StaffParticipantsApi.as_view(), name="staff-participants"),
    path(
        "staff/participants/<uuid:pk>/enrolment-code",
        views.StaffEnrolmentCodeApi.as_view(),
        name="staff-enrolment-code",
    ),
    path(
        "staff/participants/<uuid:pk>/enrolment-qr.svg",
        views.StaffEnrolmentQrApi.as_view(),
        name="staff-enrolment-qr",
    ),
    path("staff/participants/<uuid:pk>/randomise", views.StaffRandomiseApi.as_view(), name="staff-randomise"),
    path("staff/participants/<uuid:pk>/withdraw", views.StaffWithdrawApi.as_view(), name="staff-withdraw"),
]

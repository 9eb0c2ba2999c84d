"""Participant (phone) and staff API of the participants app (see phone.py)."""

from .phone import (
    ConsentApi,
    EnrolApi,
    LogoutApi,
    MeApi,
    PushSubscriptionApi,
    PushVapidKeyApi,
    StaffEnrolmentCodeApi,
    StaffEnrolmentQrApi,
    StaffParticipantsApi,
    StaffRandomiseApi,
    StaffTokenApi,
    StaffWithdrawApi,
    WithdrawApi,
    me_data,
    safety_info,
)

__all__ = [
    "ConsentApi",
    "EnrolApi",
    "LogoutApi",
    "MeApi",
    "PushSubscriptionApi",
    "PushVapidKeyApi",
    "StaffEnrolmentCodeApi",
    "StaffEnrolmentQrApi",
    "StaffParticipantsApi",
    "StaffRandomiseApi",
    "StaffTokenApi",
    "StaffWithdrawApi",
    "WithdrawApi",
    "me_data",
    "safety_info",
]

"""Participant (phone) API (phone.py) and staff API (staff.py) of the participants app."""

from .phone import (
    ConsentApi,
    EnrolApi,
    LogoutApi,
    MeApi,
    PushSubscriptionApi,
    PushVapidKeyApi,
    WithdrawApi,
    me_data,
    safety_info,
)
from .staff import (
    StaffEnrolmentCodeApi,
    StaffEnrolmentQrApi,
    StaffParticipantsApi,
    StaffRandomiseApi,
    StaffWithdrawApi,
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
    "StaffWithdrawApi",
    "WithdrawApi",
    "me_data",
    "safety_info",
]

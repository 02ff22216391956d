"""The words of the public report form and tracking page, in zh-CN and en.

Numbers in braces are the limits (``app.reporting._limits``), filled in where shown.
The link that leads here ("报告问题 / Report a problem") is the finder's catalog key
``report.link`` (static/i18n), so the sheet, the station page and this form say the same.
"""
from __future__ import annotations

TEXTS = {
    "zh-CN": {
        "site": "驿站",
        "intro": "请选择遇到的问题，点一下即可提交。",
        "closed": "本站暂停开放：{reason}",
        "more": "补充说明、照片或电话（可选）",
        "description": "描述",
        "description_hint": "最多 {max_description} 字；描述会通过开放接口（Open311）公开，请勿写入个人信息",
        "photos": "照片（最多 {max_photos} 张）",
        "phone": "回电电话",
        "phone_note": "电话只给本站工作人员看，问题处理完毕后会被删除。",
        "choose": "选择问题并提交",
        "other_lang": "English",
        "received": "已收到，谢谢！",
        "joined": "已有人报告了同样的问题，我们已合并。",
        "keep_link": "保存这个网址，随时查看处理进度。",
        "station": "站点",
        "organisation": "负责单位",
        "due": "预计 {time} 前处理",
        "due_estimated": "预计约 {time} 前处理",
        "reports": "共 {n} 人报告了这个问题",
        "timeline": "处理进度",
        "fix_photos": "处理后的照片",
        "fix_photo": "处理后的照片 {n}",
        "missing_report": "找不到这个报告。请检查链接是否完整。",
        "missing_station": "这个站点不存在或已撤销。",
        "limited": "提交太频繁了，请 {seconds} 秒后再试。",
        "back": "返回站点",
        "report_again": "报告其他问题",
        "errors": {
            "category": "请选择一个问题。",
            "description": "描述最多 {max_description} 字。",
            "phone": "电话号码格式不对，请只填数字（例如 13812345678）。",
            "photos": "照片无法使用：只接受 JPEG、PNG 或 WebP 图片，每张不超过 {photo_mb} MB。请重新选择照片。",
            "too_many_photos": "最多上传 {max_photos} 张照片。",
            "too_large": "上传的内容太大（照片合计不超过 {upload_mb} MB）。请少选几张照片再试。",
            "expired": "页面已过期，请再提交一次。",
            "expired_photos": "页面已过期，请重新选择照片后再提交。",
            "generic": "无法提交，请稍后再试。",
        },
    },
    "en": {
        "site": "Yizhan",
        "intro": "Tap the problem to send your report.",
        "closed": "This station is closed for now: {reason}",
        "more": "Add a description, photos or a phone number (optional)",
        "description": "Description",
        "description_hint": "At most {max_description:,} characters; descriptions are public (Open311), so leave out personal details",
        "photos": "Photos (up to {max_photos})",
        "phone": "Phone number for a call-back",
        "phone_note": "Only the station's staff see your number; it is deleted after the problem is closed.",
        "choose": "Choose the problem to send",
        "other_lang": "中文",
        "received": "Received — thank you!",
        "joined": "Someone already reported this; we added yours.",
        "keep_link": "Keep this address to follow what happens.",
        "station": "Station",
        "organisation": "Responsible",
        "due": "Due by {time}",
        "due_estimated": "Due by about {time}",
        "reports": "Reported by {n} people",
        "timeline": "Progress",
        "fix_photos": "Photos of the fix",
        "fix_photo": "Photo of the fix {n}",
        "missing_report": "We cannot find this report. Please check that the link is complete.",
        "missing_station": "This station does not exist or has been removed.",
        "limited": "Too many reports; please try again in {seconds} s.",
        "back": "Back to the station",
        "report_again": "Report another problem",
        "errors": {
            # English pages show the service's own message; these cover what it does not say.
            "too_many_photos": "At most {max_photos} photos, please.",
            "too_large": "That is too much to upload at once (photos up to {upload_mb} MB in all). "
                         "Choose fewer photos.",
            "expired": "This page had expired; please send it again.",
            "expired_photos": "This page had expired; please choose the photos again and send.",
            "generic": "Your report could not be sent; please try again later.",
        },
    },
}

# A work order's state, and a closing reason, as the public reads them.
STATE_WORDS = {
    "new": {"zh-CN": "已收到", "en": "Received"},
    "confirmed": {"zh-CN": "已确认", "en": "Confirmed"},
    "assigned": {"zh-CN": "已派人处理", "en": "Assigned"},
    "in_progress": {"zh-CN": "正在处理", "en": "In progress"},
    "fixed": {"zh-CN": "已修复", "en": "Fixed"},
    "closed": {"zh-CN": "已关闭", "en": "Closed"},
    "reopened": {"zh-CN": "重新处理", "en": "Reopened"},
}
REASON_WORDS = {
    "resolved": {"zh-CN": "问题已解决", "en": "the problem is solved"},
    "duplicate": {"zh-CN": "与另一份报告重复", "en": "it duplicates another report"},
    "not_responsible": {"zh-CN": "不属于本单位管理范围", "en": "it is not ours to fix"},
    "unable_to_fix": {"zh-CN": "暂时无法修复", "en": "it cannot be fixed for now"},
}

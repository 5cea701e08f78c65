"""Facts of Meta's Marketing API contract the Facebook sandbox enforces.

Copied from the codegen node specs in ``shared/specs/facebook-marketing`` (Graph v25.0)
so the sandbox needs no spec file at run time; ``tests/integration/test_facebook_sandbox.py``
checks every constant here against those files. The error shape, throttling codes and
usage headers are not in the specs; they follow Meta's documentation (see DOMAIN.md).
"""

from __future__ import annotations

from typing import Any


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Every field of the AdsInsights node (AdsInsights.json).
INSIGHTS_FIELDS = frozenset(
    _words(
        """
        account_currency account_id account_name action_values actions ad_click_actions ad_id
        ad_impression_actions ad_name adset_end adset_id adset_name adset_start advanced_actions_28d_view
        advanced_reach_1d_lookback advanced_reach_28d_lookback advanced_reach_7d_lookback age_targeting
        anchor_event_attribution_setting anchor_events_performance_indicator attribution_setting auction_bid
        auction_competitiveness auction_max_competitor_bid average_purchases_conversion_value buying_type
        campaign_id campaign_name canvas_avg_view_percent canvas_avg_view_time catalog_segment_actions
        catalog_segment_value catalog_segment_value_mobile_purchase_roas catalog_segment_value_omni_purchase_roas
        catalog_segment_value_website_purchase_roas clicks conversion_lead_rate conversion_leads
        conversion_rate_ranking conversion_values conversions
        converted_product_app_custom_event_fb_mobile_purchase
        converted_product_app_custom_event_fb_mobile_purchase_value converted_product_offline_purchase
        converted_product_offline_purchase_value converted_product_omni_purchase
        converted_product_omni_purchase_values converted_product_quantity converted_product_value
        converted_product_website_pixel_purchase converted_product_website_pixel_purchase_value
        converted_promoted_product_app_custom_event_fb_mobile_purchase
        converted_promoted_product_app_custom_event_fb_mobile_purchase_value
        converted_promoted_product_offline_purchase converted_promoted_product_offline_purchase_value
        converted_promoted_product_omni_purchase converted_promoted_product_omni_purchase_values
        converted_promoted_product_quantity converted_promoted_product_value
        converted_promoted_product_website_pixel_purchase converted_promoted_product_website_pixel_purchase_value
        cost_per_15_sec_video_view cost_per_2_sec_continuous_video_view cost_per_action_type cost_per_ad_click
        cost_per_conversion cost_per_conversion_lead cost_per_dda_countby_convs cost_per_estimated_ad_recallers
        cost_per_inline_link_click cost_per_inline_post_engagement cost_per_objective_result
        cost_per_one_thousand_ad_impression cost_per_outbound_click cost_per_result cost_per_thruplay
        cost_per_unique_action_type cost_per_unique_click cost_per_unique_conversion
        cost_per_unique_inline_link_click cost_per_unique_outbound_click cpc cpm cpp created_time
        creative_media_type ctr date_start date_stop dda_countby_convs dda_results engagement_rate_ranking
        estimated_ad_recall_rate estimated_ad_recall_rate_lower_bound estimated_ad_recall_rate_upper_bound
        estimated_ad_recallers estimated_ad_recallers_lower_bound estimated_ad_recallers_upper_bound frequency
        full_view_impressions full_view_reach gender_targeting impressions inline_link_click_ctr
        inline_link_clicks inline_post_engagement instagram_profile_visits instagram_upcoming_event_reminders_set
        instant_experience_clicks_to_open instant_experience_clicks_to_start instant_experience_outbound_clicks
        interactive_component_tap labels landing_page_view_actions_per_link_click landing_page_view_per_link_click
        landing_page_view_per_purchase_rate link_clicks_per_results location
        marketing_messages_click_rate_benchmark marketing_messages_cost_per_delivered
        marketing_messages_cost_per_link_btn_click marketing_messages_delivered marketing_messages_delivery_rate
        marketing_messages_link_btn_click marketing_messages_link_btn_click_rate
        marketing_messages_media_view_rate marketing_messages_phone_call_btn_click_rate
        marketing_messages_quick_reply_btn_click marketing_messages_quick_reply_btn_click_rate
        marketing_messages_read marketing_messages_read_rate marketing_messages_read_rate_benchmark
        marketing_messages_sent marketing_messages_spend marketing_messages_spend_currency
        marketing_messages_website_add_to_cart marketing_messages_website_initiate_checkout
        marketing_messages_website_purchase marketing_messages_website_purchase_values mobile_app_purchase_roas
        multi_event_conversion_attribution_setting objective objective_result_rate objective_results
        onsite_conversion_messaging_detected_purchase_deduped optimization_goal outbound_clicks
        outbound_clicks_ctr place_page_name product_group_retailer_id product_retailer_id product_views
        purchase_per_landing_page_view purchase_roas purchases_per_link_click
        qualifying_question_qualify_answer_rate quality_ranking reach result_rate
        result_values_performance_indicator results shops_assisted_purchases social_spend spend total_card_view
        total_postbacks total_postbacks_detailed total_postbacks_detailed_v4 unique_actions unique_clicks
        unique_conversions unique_ctr unique_inline_link_click_ctr unique_inline_link_clicks
        unique_link_clicks_ctr unique_outbound_clicks unique_outbound_clicks_ctr
        unique_video_continuous_2_sec_watched_actions unique_video_view_15_sec updated_time
        video_15_sec_watched_actions video_30_sec_watched_actions video_avg_time_watched_actions
        video_continuous_2_sec_watched_actions video_p100_watched_actions video_p25_watched_actions
        video_p50_watched_actions video_p75_watched_actions video_p95_watched_actions video_play_actions
        video_play_curve_actions video_play_retention_0_to_15s_actions video_play_retention_20_to_60s_actions
        video_play_retention_graph_actions video_thruplay_watched_actions video_time_watched_actions
        video_view_per_impression website_ctr website_purchase_roas wish_bid
        """
    )
)

# Parameters of GET/POST /act_{id}/insights (AdAccount.json) …
INSIGHTS_PARAMS = frozenset(
    _words(
        """
        action_attribution_windows action_breakdowns action_report_time breakdowns date_preset default_summary
        export_columns export_format export_name fields filtering graph_cache level limit product_id_limit sort
        summary summary_action_breakdowns time_increment time_range time_ranges use_account_attribution_setting
        use_unified_attribution_setting
        """
    )
)
# … of which the sandbox refuses these (valid for Meta, but they change the row shape it renders).
UNSUPPORTED_INSIGHTS_PARAMS = frozenset(
    _words(
        """
        breakdowns export_columns export_format export_name filtering product_id_limit sort summary
        summary_action_breakdowns time_ranges
        """
    )
)
# Universal Graph parameters no node spec lists.
GRAPH_PARAMS = frozenset({"access_token", "appsecret_proof", "after", "before", "pretty"})

# The insights enums (enum_types.json files them under node AdReportRun).
LEVELS = ("account", "ad", "adset", "campaign")  # adaccountinsights_level_enum_param
DATE_PRESETS = _words(  # adaccountinsights_date_preset_enum_param
    "data_maximum last_14d last_28d last_30d last_3d last_7d last_90d last_month last_quarter last_week_mon_sun "
    "last_week_sun_sat last_year maximum this_month this_quarter this_week_mon_today this_week_sun_today "
    "this_year today yesterday"
)
ACTION_ATTRIBUTION_WINDOWS = _words(  # adaccountinsights_action_attribution_windows_enum_param
    "1d_click 1d_ev 1d_view 28d_click 28d_view 28d_view_all_conversions 28d_view_first_conversion 7d_click "
    "7d_view 7d_view_all_conversions 7d_view_first_conversion dda default skan_click skan_click_second_postback "
    "skan_click_third_postback skan_view skan_view_second_postback skan_view_third_postback"
)
ACTION_BREAKDOWNS = _words(  # adaccountinsights_action_breakdowns_enum_param
    "action_canvas_component_name action_carousel_card_id action_carousel_card_name action_destination "
    "action_device action_reaction action_target_id action_type action_video_sound action_video_type "
    "conversion_destination is_business_ai_assisted matched_persona_id matched_persona_name "
    "signal_source_bucket standard_event_content_type"
)
ACTION_REPORT_TIMES = ("conversion", "impression", "lifetime", "mixed")  # …_action_report_time_enum_param

# AdReportRun fields (AdReportRun.json) and its async_status values (Meta's documentation).
REPORT_RUN_FIELDS = frozenset(
    _words(
        """
        account_id async_percent_completion async_report_url async_status date_start date_stop emails error_code
        error_message error_subcode error_user_msg error_user_title friendly_name id is_async_export is_bookmarked
        is_running schedule_id time_completed time_ref
        """
    )
)
JOB_NOT_STARTED, JOB_RUNNING, JOB_COMPLETED, JOB_FAILED = (
    "Job Not Started",
    "Job Running",
    "Job Completed",
    "Job Failed",
)

# CustomAudience fields (CustomAudience.json) and the customaudiences POST enums (AdAccount.json params).
AUDIENCE_FIELDS = frozenset(
    _words(
        """
        account_id approximate_count_lower_bound approximate_count_upper_bound customer_file_source data_source
        data_source_types datafile_custom_audience_uploading_status delete_time delivery_status description
        excluded_custom_audiences external_event_source fields_violating_integrity_policy household_audience id
        included_custom_audiences is_eligible_for_sac_campaigns is_household is_snapshot is_value_based
        lookalike_audience_ids lookalike_spec messenger_marketing_messages_page name operation_status opt_out_link
        owner_business page_deletion_marked_delete_time permission_for_actions pixel_id regulated_audience_spec
        retention_days rev_share_policy_id rule rule_aggregation rule_v2 seed_audience sharing_status subtype
        time_content_updated time_created time_updated
        """
    )
)
AUDIENCE_SUBTYPES = _words(  # adaccountcustomaudiences_subtype_enum_param
    "APP BAG_OF_ACCOUNTS BIDDING CLAIM CUSTOM ENGAGEMENT EXCLUSION FOX LOOKALIKE MANAGED MEASUREMENT "
    "MESSENGER_SUBSCRIBER_LIST OFFLINE_CONVERSION PARTNER PRIMARY REGULATED_CATEGORIES_AUDIENCE "
    "STUDY_RULE_AUDIENCE VIDEO WEBSITE"
)
CUSTOMER_FILE_SOURCES = ("BOTH_USER_AND_PARTNER_PROVIDED", "PARTNER_PROVIDED_ONLY", "USER_PROVIDED_ONLY")
USERS_PARAMS = frozenset({"namespace", "payload", "session"})  # POST|DELETE /{audience}/users, usersreplace
MAX_USERS_PER_REQUEST = 10_000

# GET /act_{id}/campaigns|adsets|ads parameters (AdAccount.json) and effective_status values.
METADATA_PARAMS = {
    "campaigns": frozenset({"date_preset", "effective_status", "is_completed", "time_range"}),
    "adsets": frozenset({"date_preset", "effective_status", "is_completed", "time_range", "updated_since"}),
    "ads": frozenset({"date_preset", "effective_status", "time_range", "updated_since"}),
}
EFFECTIVE_STATUSES = _words(  # adaccountcampaigns_effective_status_enum_param
    "ACTIVE ADSET_PAUSED ARCHIVED CAMPAIGN_PAUSED DELETED DISAPPROVED IN_PROCESS PAUSED PENDING_BILLING_INFO "
    "PENDING_REVIEW PREAPPROVED WITH_ISSUES"
)


class GraphError(Exception):
    """A Graph API error: ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        status: int = 400,
        subcode: int | None = None,
        type_: str = "OAuthException",
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
        self.subcode, self.type, self.transient = subcode, type_, transient

    def payload(self, fbtrace_id: str) -> dict[str, Any]:
        # Meta omits error_subcode when there is none; the sandbox sends null so the shape is fixed.
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "error_subcode": self.subcode,
                "is_transient": self.transient,
                "fbtrace_id": fbtrace_id,
            }
        }


def invalid_param(message: str, subcode: int | None = None) -> GraphError:
    """Meta's code 100: an invalid parameter (the message says which and how to fix it)."""
    return GraphError(100, f"(#100) {message}", subcode=subcode)

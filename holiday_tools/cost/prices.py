"""The prices `holiday cost` uses: us-east-1, on-demand, no free tier, each with the page it comes from.

Each was checked on PRICES_CHECKED by searching stored copies of public pages (no live web). AWS's pricing
pages fill most of their tables in the browser, so a figure was taken where a stored text showed it: the
page's own worked examples (Lambda, Step Functions), or third-party copies of AWS's Price List data that
agree with each other (EC2, EBS, public IPv4, load balancer, DynamoDB, SNS, Route 53, Secrets Manager).
Those are marked below; docs/cost.md lists how each was confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES_CHECKED = "2026-12-07"
REGION = "us-east-1"
HOURS_PER_MONTH = 730  # AWS's own convention for a month of hourly prices
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600

LAMBDA_URL = "https://aws.amazon.com/lambda/pricing/"
STEP_FUNCTIONS_URL = "https://aws.amazon.com/step-functions/pricing/"
DYNAMODB_URL = "https://aws.amazon.com/dynamodb/pricing/on-demand/"
SNS_URL = "https://aws.amazon.com/sns/pricing/"
EC2_URL = "https://aws.amazon.com/ec2/pricing/on-demand/"
EBS_URL = "https://aws.amazon.com/ebs/pricing/"
VPC_URL = "https://aws.amazon.com/vpc/pricing/"
ELB_URL = "https://aws.amazon.com/elasticloadbalancing/pricing/"
ROUTE53_URL = "https://aws.amazon.com/route53/pricing/"
SECRETS_URL = "https://aws.amazon.com/secrets-manager/pricing/"
RESTATE_CLOUD_URL = "https://restate.dev/pricing"


@dataclass(frozen=True)
class Price:
    """US dollars per one `unit`, and the page that says so."""

    usd: float
    unit: str
    url: str


PRICES: dict[str, Price] = {
    # The Lambda page's worked examples: "$0.20 per million requests", Arm "$0.0000133334" per GB-s (durable
    # functions example), SnapStart "$0.0000015046" per GB-s cached (3 hours minimum per version) and
    # "$0.0001397998" per GB restored (SnapStart example, US East N. Virginia).
    "lambda_request": Price(0.20 / 1e6, "request", LAMBDA_URL),
    "lambda_gb_second": Price(0.0000133334, "GB-second, arm64, first 7.5 billion GB-s a month", LAMBDA_URL),
    "snapstart_cache": Price(0.0000015046, "GB-second of a cached snapshot, per version", LAMBDA_URL),
    "snapstart_restore": Price(0.0001397998, "GB restored, per new execution environment", LAMBDA_URL),
    # The Step Functions page: "$0.025 per 1,000 state transitions" (US East N. Virginia); Express "$1.00 per
    # million requests" and "$0.06000 per GB-hour" for the first 1,000 GB-hours (its example 3).
    "sfn_transition": Price(0.025 / 1000, "state transition, Standard", STEP_FUNCTIONS_URL),
    "sfn_express_request": Price(1.00 / 1e6, "request, Express", STEP_FUNCTIONS_URL),
    "sfn_express_gb_second": Price(0.06 / 3600, "GB-second, Express, first 1,000 GB-hours a month", STEP_FUNCTIONS_URL),
    # Third-party copies of AWS's Price List (several, agreeing): $0.625 per million write request units.
    "dynamodb_write": Price(0.625 / 1e6, "write request unit, on-demand", DYNAMODB_URL),
    # A copy of the SNS page's text: "$0.50 per 1 million Amazon SNS requests", each 64 KB chunk one request.
    "sns_publish": Price(0.50 / 1e6, "publish request, standard topic", SNS_URL),
    # Third-party copies of AWS's Price List, 2026-09 to 2026-10 (several, agreeing).
    "ec2_t4g_small": Price(0.0168, "hour of t4g.small, Linux", EC2_URL),
    "ebs_gp3": Price(0.08, "GB-month of gp3", EBS_URL),
    "public_ipv4": Price(0.005, "hour per public IPv4 address", VPC_URL),
    "nlb": Price(0.0225, "hour per network load balancer", ELB_URL),
    "hosted_zone": Price(0.50, "month per hosted zone", ROUTE53_URL),
    "secret": Price(0.40, "month per secret", SECRETS_URL),
}


@dataclass(frozen=True)
class RestatePlan:
    """A published Restate Cloud plan: a monthly fee that includes some actions, a price for each further
    million up to a limit (beyond it: contact sales), and the sustained actions per second it allows."""

    name: str
    usd_per_month: float
    included_actions: int
    extra_per_million: tuple[tuple[int, float], ...]  # (up to this many actions a month, USD per million)
    actions_per_second: float


# A stored copy of restate.dev/cloud's pricing table (the same plans as restate.dev/pricing): Starter, Business
# and Premium, $25 per further million ("with volume discounts" on Premium: $15 from 50 to 100 million, $10 from
# 100 to 200 million, above that "Contact us"). The Free plan is left out: no free tiers here. Another copy of
# restate.dev/pricing lists higher rates per second (50, 200, 500) and a larger free plan: check the live page.
RESTATE_CLOUD_PLANS = (
    RestatePlan("Starter", 75, 5_000_000, ((200_000_000, 25.0),), 5),
    RestatePlan("Business", 300, 20_000_000, ((200_000_000, 25.0),), 20),
    RestatePlan("Premium", 1000, 50_000_000, ((100_000_000, 15.0), (200_000_000, 10.0)), 50),
)

"""A scheduler's day: propose the optimal matching of a region's waiting list, review it, and
commit exactly that plan; committing it again books nothing more.

    python examples/scheduler_plans_and_commits.py --region LONDON \
        --token "$(care-graph token --role scheduler --subject clerk-1)"
"""

from __future__ import annotations

import argparse

from client import client, operation, run


async def plan_and_commit(url: str, token: str, regions: list[str]) -> None:
    """Each step one line: the plan in figures, then what committing it booked."""
    async with client(url, token) as session:
        proposed = (await session.execute(operation("ProposePlan", regions=regions)))["runMatching"]
        summary = proposed["summary"]
        print(
            f"plan {proposed['planKey']}: {summary['matched']} of {summary['referrals']}"
            f" referrals matched, {summary['breachesAvoided']} breaches avoided,"
            f" mean travel {summary['meanTravelKm']} km"
        )
        committed = (await session.execute(operation("CommitPlan", key=proposed["planKey"])))[
            "runMatching"
        ]["committed"]
        print(f"committed: {committed['booked']} booked, {len(committed['skipped'])} skipped")
        again = (await session.execute(operation("CommitPlan", key=proposed["planKey"])))[
            "runMatching"
        ]["committed"]
        print(f"committed again: {again['booked']} booked (the same answer, nothing new)")


def main() -> None:
    def regions(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--region", action="append", required=True, help="a region code (repeatable)"
        )

    run(
        __doc__,
        lambda options: plan_and_commit(options.url, options.token, options.region),
        regions,
    )


if __name__ == "__main__":
    main()

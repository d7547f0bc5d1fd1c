"""Live updates, with a scheduler's token: subscribe to offers over graphql-transport-ws,
cancel a booking, and hear its freed slot offered to the next waiting referral.

    python examples/subscriber_hears_an_offer.py \
        --token "$(care-graph token --role scheduler --subject clerk-1)"
"""

from __future__ import annotations

import asyncio
from typing import Any

from client import client, operation, run
from gql import Client
from gql.transport.websockets import WebsocketsTransport

WAIT_SECONDS = 10  # for each offer to be heard
TRIES = 3  # cancellations, in case a freed slot has no waiting referral within reach


async def hear_an_offer(url: str, token: str) -> None:
    """One line per step: subscribed, cancelled, and the offer heard."""
    live = Client(
        transport=WebsocketsTransport(
            url=url.replace("http", "ws", 1),
            init_payload={"Authorization": f"Bearer {token}"},
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        )
    )
    async with live as socket, client(url, token) as session:
        offers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def listen() -> None:
            async for event in socket.subscribe(operation("SlotOffered")):
                await offers.put(event["slotOffered"])

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.5)  # let the subscription start before anything happens
        print("subscribed to slotOffered")
        booked = await session.execute(operation("BookedAppointments", first=TRIES))
        try:
            for appointment in booked["appointments"]["nodes"]:
                await session.execute(operation("CancelAppointment", appointment=appointment["id"]))
                print(f"cancelled {appointment['id']}, freeing {appointment['slot']['id']}")
                try:
                    offer = await asyncio.wait_for(offers.get(), WAIT_SECONDS)
                except TimeoutError:
                    print("  nobody waiting could take it")
                    continue
                print(
                    f"heard: {offer['slotId']} offered to {offer['referralId']}"
                    f" until {offer['expiresAt']}"
                )
                return
            raise SystemExit("no offer was heard")
        finally:
            listener.cancel()


def main() -> None:
    run(__doc__, lambda options: hear_an_offer(options.url, options.token))


if __name__ == "__main__":
    main()

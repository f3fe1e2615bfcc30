"""Chat requests for the proxy benchmarks: a ~1 KB support message with a name, an e-mail
address and a phone number, different in every request.

Every value and most of the wording change from one request to the next, so no cache
(of texts, sentences or values) can answer a request from an earlier one.

>>> request = Workload(seed=1).next()
>>> 900 <= len(request.message) <= 1300 and request.email in request.message
True
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

FIRST = ("Maria", "James", "Aisha", "Wei", "Olga", "Carlos", "Priya", "Thomas", "Fatima",
         "Daniel", "Sofia", "Kenji", "Emma", "Lucas", "Hannah", "Mohammed", "Grace", "Ivan",
         "Chloe", "Samuel", "Elena", "David", "Amara", "Noah", "Laura", "Patrick", "Mei",
         "Oliver", "Nadia", "Robert")
LAST = ("Gonzalez", "Whitaker", "Okafor", "Zhang", "Petrova", "Mendes", "Raman", "Fischer",
        "Haddad", "Kowalski", "Rossi", "Tanaka", "Brennan", "Martins", "Schneider", "Farouk",
        "Oduya", "Volkov", "Dubois", "Carter", "Novak", "Lindqvist", "Mensah", "Walsh",
        "Moreau", "Sullivan", "Chen", "Harper", "Aziz", "Thompson")
DOMAINS = ("example.com", "example.org", "mail.example.net", "example.co.uk", "corp.example.io")
AREA_CODES = (212, 303, 312, 415, 512, 617, 646, 206, 305, 713)

PRODUCTS = ("espresso machine", "standing desk", "robot vacuum", "wireless router",
            "electric kettle", "noise-cancelling headset", "air purifier", "smart thermostat",
            "bread maker", "e-bike battery")
PARTS = ("power supply", "water tank", "control panel", "charging dock", "filter",
         "display", "main board", "fan", "motor", "hinge")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
CONDITIONS = ("two days late", "with a dented corner", "without the power cable",
              "in a damaged box", "on time but missing the manual", "with a cracked lid")
REMEDIES = ("replacement", "refund", "repair", "store credit", "partial refund")
PURPOSES = ("my home office", "a family event next month", "my small bakery",
            "a rental apartment", "my daily commute", "a school project")

FILLERS = (
    "I ordered the {product} on {weekday} and it arrived {condition}.",
    "The {product} stopped working after {n} days of perfectly normal use.",
    "Your help page says the {part} can be replaced at home, but the guide link is broken.",
    "I tried resetting the {part} {n} times and updated the firmware, with no change at all.",
    "Could you tell me whether the warranty covers a faulty {part}, and how long repairs take?",
    "I would prefer a {remedy} if possible, since I bought it for {purpose}.",
    "Please tell me what you need from me, such as photos of the {part} or the receipt.",
    "The box was {condition2} and the manual seemed to be for an older {product}.",
    "A friend bought the same {product} and had the same problem with the {part}.",
    "I have been a customer for {n} years and this is the first time I need to complain.",
    "The noise from the {part} gets louder every {weekday} when I use it the most.",
    "If a technician has to come by, mornings before ten work best for me.",
    "I am happy to ship it back, but I would need a prepaid label for the {product}.",
    "The chat assistant on your site sent me in circles about the {part} twice.",
)

CONTACT = (
    "You can reach me at {email} or call me on {phone} in the afternoon.",
    "My e-mail is {email}; my mobile number is {phone} if a call is easier.",
    "Please write to {email} or phone {phone}, I check both every day.",
)
SIGN_OFF = ("Thanks in advance, {name}.", "Best regards, {name}.", "Kind regards, {name}.")

SYSTEM = "You are a helpful customer support assistant. Answer briefly and politely."


@dataclass(frozen=True)
class ChatRequest:
    body: bytes
    message: str
    email: str


class Workload:
    """Makes one :class:`ChatRequest` per call of :meth:`next` (about 1 KB of user text)."""

    def __init__(self, seed: int = 0, target_chars: int = 1000) -> None:
        self.random = random.Random(seed)
        self.target_chars = target_chars

    def next(self) -> ChatRequest:
        r = self.random
        first, last = r.choice(FIRST), r.choice(LAST)
        name = f"{first} {last}"
        email = f"{first.lower()}.{last.lower()}{r.randrange(10, 9999)}@{r.choice(DOMAINS)}"
        phone = (f"({r.choice(AREA_CODES)}) {r.randrange(201, 999)}-"
                 f"{r.randrange(0, 10000):04d}")
        slots = {"product": r.choice(PRODUCTS), "part": r.choice(PARTS),
                 "weekday": r.choice(WEEKDAYS), "condition": r.choice(CONDITIONS),
                 "condition2": r.choice(CONDITIONS), "remedy": r.choice(REMEDIES),
                 "purpose": r.choice(PURPOSES), "n": r.randrange(2, 30)}
        sentences = [f"Hello, my name is {name}."]
        fillers = r.sample(FILLERS, len(FILLERS))
        contact = r.choice(CONTACT).format(email=email, phone=phone)
        sign_off = r.choice(SIGN_OFF).format(name=first)
        while fillers and sum(map(len, sentences)) + len(contact) + len(sign_off) < self.target_chars:
            sentences.append(fillers.pop().format(**slots))
            slots["n"] = r.randrange(2, 30)
        sentences.insert(r.randrange(2, len(sentences) + 1), contact)
        sentences.append(sign_off)
        message = " ".join(sentences)
        body = json.dumps({"model": "gpt-4o-mini", "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": message}]}).encode()
        return ChatRequest(body, message, email)

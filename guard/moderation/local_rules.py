"""Declarative rules of the ``local`` classifier: word groups, phrase patterns, term lists.

Every rule is data: a name, a regular expression over normalised text (lower-case tokens
joined by single spaces, contractions expanded: "I'll" -> "i will"), and the score it adds
per category. The engine in :mod:`guard.moderation.local` only matches and combines, so
tuning the classifier means editing this file and re-running the examples in the tests.

Weights are hand-set, not learned: about 0.7-0.9 for a phrase that is harmful on its own
("how do i make a pipe bomb"), 0.3-0.5 for a cue that needs company ("without getting
caught"), and 0.1-0.25 per word for the context-free lexicons, which are capped below 0.5 so
that words alone never reach the default threshold.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType


class Words(str):
    """A regex alternation of words and phrases that remembers them.

    It is a ``str`` (the pattern, longest alternative first so "pipe bomb" wins over
    "pipe") to compose into rules, and knows the first token of each alternative, which
    gives a rule its anchors: a rule runs only on text containing one of them.
    """

    words: tuple[str, ...]

    def __new__(cls, words: Iterable[str]) -> Words:
        unique = tuple(sorted(set(words), key=lambda w: (-len(w), w)))
        self = super().__new__(cls, "(?:" + "|".join(re.escape(w) for w in unique) + ")")
        self.words = unique
        return self

    @property
    def first(self) -> frozenset[str]:
        return frozenset(w.split()[0] for w in self.words)

    @property
    def last(self) -> frozenset[str]:
        return frozenset(w.split()[-1] for w in self.words)


def alt(words: Iterable[str]) -> Words:
    return Words(words)


def keyed(words: Words, keys: Iterable[str]) -> frozenset[str]:
    """``keys`` as anchors for ``words``, checked: every alternative contains one of them."""
    keys = frozenset(keys)
    missing = [w for w in words.words if keys.isdisjoint(w.split())]
    if missing:
        raise AssertionError(f"anchor keys miss {missing}")
    return keys


def plural(*nouns: str) -> list[str]:
    out: list[str] = []
    for noun in nouns:
        out.append(noun)
        if noun.endswith(("s", "x", "ch", "sh")):
            out.append(noun + "es")
        elif noun.endswith("y") and noun[-2:-1] not in "aeiou":
            out.append(noun[:-1] + "ies")
        else:
            out.append(noun + "s")
    return out


# --- word groups -------------------------------------------------------------------------

LETHAL_BASE = alt([
    "kill", "murder", "shoot", "stab", "strangle", "poison", "slaughter", "behead",
    "decapitate", "execute", "lynch", "torture", "massacre", "rape", "gun down", "blow up",
    "run over", "burn alive", "set fire to", "hang", "drown", "suffocate", "smother", "gas",
    "exterminate", "butcher", "assassinate", "bomb", "shoot up", "knife", "kidnap",
])
LETHAL_ANY = alt([
    "kill", "kills", "killed", "killing", "murder", "murders", "murdered", "murdering",
    "shoot", "shoots", "shot", "shooting", "stab", "stabs", "stabbed", "stabbing",
    "strangle", "strangled", "strangling", "poison", "poisoned", "poisoning", "slaughter",
    "slaughtered", "behead", "beheaded", "decapitate", "decapitated", "execute", "executed",
    "lynch", "lynched", "torture", "tortured", "torturing", "massacre", "massacred", "rape",
    "raped", "raping", "gun down", "gunned down", "blow up", "blew up", "run over", "ran over",
    "burn alive", "burned alive", "burnt alive", "hang", "hanged", "drown", "drowned",
    "suffocate", "suffocated", "smother", "smothered", "gas", "gassed", "exterminate",
    "exterminated", "butcher", "butchered", "assassinate", "assassinated", "kidnap",
    "kidnapped",
])
SOFT_BASE = alt([
    "hurt", "harm", "attack", "assault", "beat", "beat up", "punch", "kick", "choke", "burn",
    "hit", "smack", "slap", "stomp", "maim", "cripple", "break the legs of",
])
THREAT_VERBS = alt([
    "hurt", "harm", "beat", "beat up", "punch", "choke", "find and kill", "come for",
    "come after", "rape", "kill", "murder", "shoot", "stab", "strangle", "torture", "hunt down",
    "burn", "gut", "slit the throat of", "break the legs of", "break your legs",
])
"""Verbs of a threat aimed at "you". Not "hit", "destroy", "cut" or "get": "i will hit you
up later", "i will destroy you at chess", "i will cut you a slice"."""
SOFT_ANY = alt([
    "hurt", "hurts", "hurting", "harm", "harmed", "attack", "attacked", "attacking", "assault",
    "assaulted", "beat", "beaten", "beating", "beat up", "punch", "punched", "kick", "kicked",
    "choke", "choked", "choking", "burn", "burned", "hit", "smack", "smacked", "slap",
    "slapped", "stomp", "stomped", "maim", "maimed", "cripple", "crippled",
])

GROUP_WORDS = [
    "jews", "jewish people", "the jew", "muslims", "moslems", "arabs", "blacks",
    "black people", "whites", "white people", "asians", "chinese", "chinese people",
    "japanese", "koreans", "indians", "pakistanis", "mexicans", "latinos", "latinas",
    "hispanics", "immigrants", "illegal immigrants", "illegals", "migrants", "refugees",
    "asylum seekers", "foreigners", "gays", "gay people", "lesbians", "homosexuals",
    "bisexuals", "trans people", "transgender people", "transgenders", "women", "females",
    "men", "christians", "catholics", "protestants", "mormons", "hindus", "sikhs",
    "buddhists", "atheists", "africans", "gypsies", "roma", "disabled people", "the disabled",
    "cripples", "autistic people", "jew", "muslim",
]
GROUP = alt(GROUP_WORDS)

PERSON_NOUN = alt([
    *plural("neighbour", "neighbor", "husband", "boss", "teacher", "mother", "father",
            "brother", "sister", "son", "daughter", "baby", "kid", "girlfriend", "boyfriend",
            "partner", "roommate", "flatmate", "landlord", "coworker", "colleague",
            "classmate", "student", "friend", "cop", "officer", "senator", "judge", "guy",
            "girl", "boy", "stranger", "doctor", "nurse", "customer", "employee", "manager",
            "bully", "enemy", "rival", "victim", "hostage", "infidel", "person", "mom", "mum",
            "dad", "parent", "cousin", "uncle", "aunt", "grandma", "grandpa", "ex",
            "stepdad", "stepmom", "coach", "priest", "pastor", "imam", "rabbi", "classmate",
            "wife", "family", "cat", "dog"),
    "wives", "child", "children", "people", "man", "men", "woman", "women", "police",
    "policeman", "policemen", "president", "prime minister", "everyone", "everybody",
    "someone", "somebody", "anyone", "anybody", "him", "her", "them",
    *GROUP_WORDS,
])
DET = alt([
    "my", "his", "her", "their", "your", "our", "the", "a", "an", "that", "this", "those",
    "these", "some", "all", "all the", "all of the", "every", "any", "each", "one", "my own",
    "my stupid", "my annoying", "that stupid", "this stupid", "that annoying", "my whole",
    "the whole", "my entire", "an entire",
])
# A person target, not followed by a noun that turns it into a thing ("child process").
_NOT_A_PERSON = alt([
    "process", "processes", "thread", "threads", "task", "tasks", "job", "jobs", "node",
    "nodes", "pid", "element", "elements", "window", "widget", "container", "pod", "pods",
    "session", "sessions", "branch", "object", "objects", "component", "row", "rows", "mode",
    "theme", "character", "characters", "npc", "npcs", "vibe", "vibes", "mood", "joke",
    "jokes", "photo", "photos", "picture", "pictures", "a message", "a text", "an email",
    "s", "up", "a line", "a look", "a glance",
])
TARGET = rf"(?:{DET} )?{PERSON_NOUN}(?! {_NOT_A_PERSON}\b)"

HOWTO = alt([
    *(f"how {aux} {who}" for aux in ("do", "can", "could", "would", "should", "might",
                                     "does", "did", "will")
      for who in ("i", "we", "you", "one", "someone", "somebody", "a person", "people")),
    "how to", "how i can", "how i could", "way to", "ways to", "steps to",
    "instructions for", "instructions to", "instructions on", "guide to", "guide for",
    "guide on", "tutorial on", "tutorial for", "recipe for", "teach me to",
    "teach me how to", "tell me how to", "show me how to", "explain how to", "help me",
    "best way to", "easiest way to", "quickest way to", "simplest way to",
    "where can i", "where do i", "where could i", "i want to learn how to",
    "i need to know how to", "what is the best way to", "what is the easiest way to",
])
MAKE = alt([
    "make", "build", "assemble", "construct", "create", "manufacture", "produce", "cook",
    "synthesize", "synthesise", "brew", "rig", "3d print", "print", "put together", "mix",
    "prepare", "craft", "detonate", "set off", "plant", "hide", "smuggle", "get", "buy",
    "obtain", "acquire", "order", "get hold of", "sneak", "bring", "use", "deploy", "release",
    "spread", "weaponize", "weaponise", "grow", "culture", "extract",
])
WEAPON_ADJ = alt([
    "homemade", "home made", "simple", "small", "big", "powerful", "real", "working",
    "functional", "crude", "improvised", "deadly", "lethal", "untraceable", "diy", "strong",
    "large", "makeshift", "effective", "cheap", "quick",
])
EXPLOSIVE_OR_AGENT = alt([
    *plural("bomb", "pipe bomb", "nail bomb", "car bomb", "dirty bomb", "letter bomb",
            "explosive", "explosive device", "ied", "grenade", "molotov", "molotov cocktail",
            "detonator", "nerve agent", "bioweapon", "biological weapon", "chemical weapon",
            "suicide vest", "landmine", "fertilizer bomb", "pressure cooker bomb"),
    "napalm", "thermite", "tnt", "c4", "semtex", "nerve gas", "sarin", "vx", "ricin",
    "anthrax", "mustard gas", "chlorine gas", "poison gas", "tear gas", "tatp",
])
FIREARM = alt([
    *plural("gun", "ghost gun", "firearm", "rifle", "pistol", "handgun", "machine gun",
            "assault rifle", "silencer", "suppressor", "zip gun", "bump stock", "auto sear"),
    "ar 15", "ar15", "ak 47", "ak47",
])
DRUG = alt([
    "meth", "methamphetamine", "crystal meth", "crack", "crack cocaine", "cocaine",
    "heroin", "fentanyl", "lsd", "mdma", "ecstasy", "ghb", "pcp", "opium", "ketamine",
    "drugs", "illegal drugs", "hard drugs", "carfentanil", "krokodil", "date rape drug",
    "roofies", "rohypnol",
])

SELF_ACT = alt([
    "kill myself", "end my life", "end my own life", "take my own life", "take my life",
    "commit suicide", "die by suicide", "hang myself", "shoot myself", "stab myself",
    "drown myself", "cut myself", "cut my wrists", "slit my wrists", "slit my throat",
    "hurt myself", "harm myself", "overdose", "od", "starve myself", "poison myself",
    "jump off a bridge", "jump off the bridge", "jump off a building", "jump off the roof",
    "jump off a cliff", "jump in front of a train", "jump in front of a bus", "end it all",
    "end it", "not wake up", "kill me", "burn myself", "suffocate myself", "disappear forever",
])
SELF_ACT_STRONG = alt([
    "kill myself", "end my life", "end my own life", "take my own life", "hang myself",
    "slit my wrists", "shoot myself", "unalive myself", "cut my wrists", "end it all",
    "ending it all", "ending my life", "taking my own life",
])
SELF_ACT_ING = alt([
    "killing myself", "ending my life", "ending it all", "suicide", "committing suicide",
    "taking my own life", "taking my life", "hurting myself", "harming myself",
    "cutting myself", "cutting again", "hanging myself", "overdosing", "jumping off",
    "starving myself", "self harm", "self harming",
])
# Ways a message speaks in the first person about what the writer will do.
INTENT_I = (
    r"i (?:really |just |honestly |seriously |still |truly |actually |kind of |kinda )?"
    + alt([
        "want to", "am going to", "will", "plan to", "am planning to", "planned to",
        "intend to", "am about to", "have decided to", "decided to", "am ready to",
        "need to", "would like to", "wish i could", "am trying to", "tried to", "could",
        "should", "might", "am gonna", "feel like i should", "feel like i want to",
        "am going to try to", "have to", "want to just", "think i will", "think i am going to",
    ])
    + r" (?:just |finally |go |try to )?"
)
INTENT_ING = r"i (?:am|have been|was|keep|cannot stop|can not stop|can not stop) " + alt([
    "thinking about", "thinking of", "considering", "planning on", "planning", "contemplating",
    "fantasizing about", "fantasising about",
])
TIME_SOON = alt([
    "tonight", "today", "tomorrow", "this weekend", "right now", "now", "soon", "after work",
    "this week", "when everyone is asleep", "before morning", "in an hour",
])
MINOR_CORE = (
    "(?:"
    + alt([
        "child", "children", "kid", "kids", "kiddie", "minor", "minors", "underage",
        "under age", "preteen", "preteens", "pre teen", "toddler", "toddlers", "infant",
        "infants", "schoolgirl", "schoolgirls", "schoolboy", "schoolboys", "little girl",
        "little girls", "little boy", "little boys", "young girl", "young girls", "young boy",
        "young boys", "teen", "teens", "teenager", "teenagers", "teenage", "loli", "lolita",
        "shota", "middle school", "middle schooler", "elementary school", "grade school",
        "high schooler", "jailbait", "under 18", "under eighteen", "daughter", "son",
        "stepdaughter", "stepson", "niece", "nephew",
    ])
    + r"|(?:[1-9]|1[0-7]|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
    r"|thirteen|fourteen|fifteen|sixteen|seventeen) (?:year|years|yr|yrs) old"
    r"|(?:[1-9]|1[0-7]) ?yo)"
)
MINOR = rf"\b{MINOR_CORE}\b"
"""Minor context for ``sexual/minors``; only counts together with a sexual signal."""

BENIGN_CONTEXT = (
    r"\b"
    + alt([
        "process", "processes", "pid", "thread", "threads", "linux", "unix", "bash",
        "terminal", "shell", "command", "python", "java", "docker", "container", "kubernetes",
        "k8s", "server", "script", "program", "app", "task manager", "sigkill", "sigterm",
        "cron", "daemon", "browser", "tab", "query", "session", "port", "socket", "database",
        "code", "game", "games", "gaming", "video game", "level", "boss fight", "npc", "npcs",
        "quest", "raid", "player", "players", "minecraft", "fortnite", "roblox",
        "call of duty", "gta", "elden ring", "dark souls", "skyrim", "zelda", "pokemon",
        "valorant", "overwatch", "dungeon", "photo", "photos", "photograph", "picture",
        "pictures", "pics", "video", "film", "camera", "portrait", "wedding", "hoops",
        "basketball", "soccer", "football", "goal", "weeds", "lawn", "garden", "plant",
        "plants", "bug", "bugs", "mosquito", "mosquitoes", "ants", "cockroach", "mice", "rats",
        "pest", "pests", "bacteria", "germs", "mold", "lice", "fleas", "ticks",
    ])
    + r"\b"
)
"""Words that make "kill", "shoot" or "attack" usually harmless (processes, games, photos,
pests). Rules marked ``benign_dampened`` score a third as much when one is present."""


# --- rules -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """A phrase pattern and the score it adds per category when it matches."""

    name: str
    pattern: str
    scores: Mapping[str, float]
    anchors: frozenset[str]
    """The rule is tried only on text containing one of these tokens (a speed-up: every
    match of ``pattern`` contains one of them)."""
    benign_dampened: bool = False


def _rule(
    name: str,
    pattern: str,
    *anchor_sets: Iterable[str],
    dampened: bool = False,
    **scores: float,
) -> Rule:
    """Keyword ``scores`` use ``__`` for "/" and ``_`` for "-" (``self_harm__intent``)."""
    named = {k.replace("__", "/").replace("_", "-"): v for k, v in scores.items()}
    anchors = frozenset().union(*anchor_sets)
    if not anchors and isinstance(pattern, Words):
        anchors = pattern.first
    if not anchors:
        raise AssertionError(f"rule {name} has no anchors")
    return Rule(name, r"\b" + pattern + r"\b", MappingProxyType(named), anchors, dampened)


_TARGET_YOU = (
    r"(?:you|your (?:whole )?(?:family|kids|children|wife|husband|mom|mum|dad|son|daughter))"
)
_DEHUMAN = alt([
    "animals", "vermin", "subhuman", "sub human", "subhumans", "parasites", "rats",
    "cockroaches", "roaches", "insects", "a disease", "a plague", "a cancer", "cancer",
    "a virus", "filth", "filthy", "scum", "savages", "apes", "monkeys", "inferior", "not human",
    "not even human", "less than human", "trash", "garbage", "evil", "disgusting", "a blight",
    "invaders", "criminals", "rapists", "terrorists", "pedophiles", "degenerates", "dirty",
    "stupid", "lazy", "the problem", "the enemy", "ruining everything", "ruining this country",
    "destroying this country", "destroying our country", "taking over", "breeding like rats",
    "a threat", "worthless", "useless", "dogs", "pigs", "swine", "mentally ill", "sick",
    "freaks", "abominations", "an abomination",
])
_GROUP_SUBJECT = r"(?:(?:all|those|these|the|most|fucking|filthy|dirty|damn|damned) )*" + GROUP
_BODY_PART = alt([
    "head", "skull", "face", "eyes", "eye", "throat", "belly", "stomach", "chest", "arm",
    "arms", "leg", "legs", "fingers", "skin", "flesh", "limbs", "body", "torso", "neck", "guts",
    "intestines", "jaw", "teeth", "brain", "heart", "spine", "scalp", "ribs",
])

HOWTO_KEYS = keyed(HOWTO, [
    "how", "way", "ways", "steps", "instructions", "guide", "tutorial", "recipe", "teach",
    "tell", "show", "explain", "help", "where",
])
_ATTACK_BASE = Words(LETHAL_BASE.words + SOFT_BASE.words)
_VENUE = alt([
    "school", "church", "mosque", "synagogue", "temple", "mall", "concert", "office",
    "workplace", "class", "hospital", "station", "airport", "crowd", "parade", "festival",
    "rally", "university", "campus", "subway", "stadium",
])
_GORE = alt(["blood", "guts", "brains", "entrails", "intestines", "organs", "viscera", "gore"])
_DETAIL_ADJ = alt([
    "graphic", "gory", "gruesome", "vivid", "bloody", "excruciating", "sickening", "grisly",
    "explicit",
])
_CRIME = alt([
    "shoplift", "steal a car", "steal a", "steal from", "steal money", "steal someone",
    "steal my", "steal credit", "steal an identity", "rob a", "rob my", "rob someone",
    "rob the", "mug someone", "pickpocket", "burgle", "burglarize", "hotwire", "hot wire",
    "launder money", "launder cash", "launder the money", "launder crypto",
    "counterfeit money", "counterfeit bills", "counterfeit currency", "make counterfeit",
    "print counterfeit", "print money", "make fake money", "make a fake id", "get a fake id",
    "make fake ids", "forge a signature", "forge signatures", "forge a document",
    "forge documents", "forge a check", "forge a prescription", "forge a passport",
    "forge a doctor", "hack into", "hack someone", "hack my ex", "hack my girlfriend",
    "hack my boyfriend", "hack my wife", "hack my husband", "hack a bank", "hack an account",
    "phish", "scam people", "scam someone", "scam old people", "scam the elderly",
    "scam elderly", "defraud", "embezzle", "bribe a", "blackmail", "extort", "smuggle",
    "evade taxes", "commit fraud", "commit tax fraud", "commit insurance fraud",
    "commit identity theft", "break into a", "break into someone", "break into my neighbour",
    "break into my neighbor", "break into the", "break into his", "break into her", "stalk",
    "spy on my", "track my wife", "track my girlfriend", "track my husband",
    "cheat on a drug test", "pass a drug test", "bypass a breathalyzer", "get away with",
    "poison", "skim credit cards", "clone a credit card", "clone credit cards",
    "make ransomware", "write ransomware", "make malware", "write malware", "ddos",
    "make a keylogger", "write a keylogger", "bypass a paywall",
])
_SELF_HARM_HOWTO = alt([
    "kill myself", "kill yourself", "kill oneself", "commit suicide", "end my life",
    "end your life", "end ones life", "end a life", "hang myself", "hang yourself",
    "hang oneself", "cut myself", "cut yourself", "cut deeper", "cut without",
    "slit my wrists", "slit your wrists", "overdose", "od on", "starve myself",
    "starve yourself", "purge", "make myself throw up", "make myself vomit",
    "make myself puke", "suffocate myself", "poison myself", "die painlessly",
    "die quickly", "die in my sleep", "tie a noose", "make a noose", "hide my cuts",
    "hide cuts", "hide my scars", "hide self harm", "stop eating", "unalive myself",
])
_SOON_ACT = Words([*SELF_ACT.words, "die"])
_SELF_TOPIC_ANCHORS = {"himself", "herself", "themselves", "themself", "suicide"}
_EXPLICIT_NOUN = alt([
    "scene", "story", "stories", "fanfic", "fan fiction", "roleplay", "role play", "poem",
    "description", "chat", "message", "text", "content", "fantasy", "encounter", "sex",
])
_NUDES = alt([
    "nudes", "nude pics", "nude photos", "naked pics", "naked photos", "naked pictures",
    "nude pictures", "dick pics", "tits", "boobs", "pussy",
])
_MINOR_ACT = alt([
    "have sex with", "having sex with", "sex with", "sleep with", "sleeping with", "fuck",
    "fucking", "rape", "raping", "molest", "molesting", "seduce", "seducing", "nudes of",
    "naked pictures of", "naked photos of", "nude photos of", "nude pictures of",
    "sexual pictures of", "sexy pictures of", "sexual photos of", "grope", "groping",
    "sexually abuse", "sexting with", "sext", "sexts", "masturbate to",
    "masturbate in front of", "jerk off to", "porn of", "porn with", "porn involving",
    "sex involving",
])

RULES: tuple[Rule, ...] = (
    # violence against people, illicit/violent weapons
    _rule("attack_person", rf"{LETHAL_ANY} {TARGET}", LETHAL_ANY.first, dampened=True,
          violence=0.7),
    _rule("attack_person_soft", rf"{SOFT_ANY} {TARGET}", SOFT_ANY.first, dampened=True,
          violence=0.35),
    _rule("intent_to_attack", rf"(?:i|we) (?:really |just |seriously )?"
          rf"(?:will|am going to|are going to|am gonna|want to|wanna|plan to|am planning to|"
          rf"intend to|would like to|would love to|am about to|have decided to|need to|"
          rf"should|could|shall|must|gotta|am coming to|think i will) (?:just |finally |go )?"
          rf"{_ATTACK_BASE} {TARGET}", _ATTACK_BASE.first, dampened=True, violence=0.8),
    _rule("threat_to_you", rf"(?:i|we) (?:really |just |seriously )?(?:will|am going to|"
          rf"are going to|am gonna|shall|would|want to|plan to|am coming to|gonna|swear i will)"
          rf" (?:{LETHAL_BASE}|{THREAT_VERBS}) {_TARGET_YOU}(?! (?:up|back|later|a line)\b)",
          {"you", "your"}, dampened=True,
          harassment__threatening=0.9, harassment=0.8, violence=0.7),
    _rule("threat_phrase", alt([
        "i know where you live", "i will find you", "you are dead meat", "you are a dead man",
        "you will regret this", "you will pay for this", "your days are numbered",
        "you will not see tomorrow", "you are going to die", "you will die",
        "you will suffer", "i am coming for you", "we are coming for you",
        "sleep with one eye open", "i will make you suffer", "i will end you",
        "you will be next", "you are next", "beat the shit out of you",
        "beat the crap out of you", "beat the hell out of you", "kick your ass", "smash your face",
        "break your neck", "break your legs", "slit your throat", "put a bullet in your",
        "put a bullet in you", "put you in the ground", "put you in the hospital",
        "burn your house down", "you will not live", "you will not survive",
    ]), harassment__threatening=0.7, harassment=0.6, violence=0.45),
    _rule("howto_attack", rf"{HOWTO} {_ATTACK_BASE} {TARGET}", _ATTACK_BASE.first,
          dampened=True, violence=0.75, illicit__violent=0.5, illicit=0.4),
    _rule("weapon_to_kill", rf"{EXPLOSIVE_OR_AGENT} (?:to|and|that will|that can|which will)"
          rf" {_ATTACK_BASE}", EXPLOSIVE_OR_AGENT.first, violence=0.5, illicit__violent=0.5),
    _rule("howto_explosive", rf"{HOWTO} (?:go about )?{MAKE} (?:{DET} )?(?:{WEAPON_ADJ} )*"
          rf"{EXPLOSIVE_OR_AGENT}", EXPLOSIVE_OR_AGENT.first,
          illicit__violent=0.9, illicit=0.75, violence=0.35),
    _rule("make_explosive", rf"(?:making|building|assembling|made|built|planting|detonating|"
          rf"make|makes|mix|mixing|produce|produces) (?:{DET} )?(?:{WEAPON_ADJ} )*"
          rf"{EXPLOSIVE_OR_AGENT}", EXPLOSIVE_OR_AGENT.first,
          illicit__violent=0.45, violence=0.3),
    _rule("howto_firearm", rf"{HOWTO} (?:make|build|assemble|manufacture|3d print|print|"
          rf"convert) (?:{DET} )?(?:{WEAPON_ADJ} )*{FIREARM}", FIREARM.first,
          illicit__violent=0.6, illicit=0.5),
    _rule("untraceable_firearm", rf"(?:untraceable|unregistered|ghost|stolen) {FIREARM}|"
          rf"{FIREARM} without (?:a )?(?:serial number|background check|license|licence)|"
          rf"(?:buy|get) (?:{DET} )?{FIREARM} (?:illegally|on the dark web|without)|"
          rf"(?:full auto|fully automatic) conversion|convert (?:{DET} )?{FIREARM} to "
          rf"(?:full auto|fully automatic)", FIREARM.first, {"full", "fully"},
          illicit__violent=0.8, illicit=0.7),
    _rule("mass_attack", rf"(?:{LETHAL_BASE}|attack|shoot up) (?:{DET} )?(?:\w+ )?{_VENUE}",
          _VENUE.first, dampened=True, violence=0.7, illicit__violent=0.4),
    _rule("dispose_body", r"(?:dispose of|get rid of|hide|bury|dissolve|burn) "
          r"(?:(?:a|the|my|his|her|their) )?(?:\w+ )?(?:dead body|corpse|corpses|body|bodies)"
          r"(?! (?:fat|odor|odour|hair|acne|ache|aches|pain|lotion|spray|weight|image|wash|"
          r"mass|temperature|heat|language|shop|kit|paint|work|armor|armour|of|butter))",
          {"body", "bodies", "corpse", "corpses"}, dampened=True,
          illicit__violent=0.7, violence=0.55, illicit=0.6),
    # graphic violence
    _rule("gore_event", rf"{_GORE} (?:everywhere|spilling|spilled|pouring|gushing|spraying|"
          r"splattered|splattering|oozing|dripping|hanging out|spattered|spurting|exploding)",
          _GORE.first, violence__graphic=0.55, violence=0.35),
    _rule("torn_body", rf"(?:ripped|tore|torn|sliced|hacked|chopped|blew|blown|gouged|peeled|"
          rf"cut|split|smashed|crushed|caved) (?:\w+ ){{0,3}}{_BODY_PART} "
          rf"(?:open|off|apart|out|in|to pieces|into pieces|to shreds|to a pulp)",
          _BODY_PART.first, violence__graphic=0.55, violence=0.5),
    _rule("mutilation", alt([
        "dismember", "dismembered", "dismembering", "decapitated", "disemboweled",
        "disembowelled", "disembowel", "mutilated", "mutilate", "mutilating", "eviscerated",
        "flayed", "skinned alive", "burned alive", "burnt alive", "limb from limb",
    ]), violence__graphic=0.35, violence=0.4),
    _rule("graphic_detail", rf"in {_DETAIL_ADJ} detail", {"detail"},
          violence__graphic=0.3, violence=0.15),
    # illicit, non-violent
    _rule("howto_drugs", rf"{HOWTO} (?:{MAKE}|sell|deal|score|traffic|smuggle) "
          rf"(?:some |a |an |pure |the |more )?{DRUG}", DRUG.first, illicit=0.85),
    _rule("howto_crime", rf"{HOWTO} {_CRIME}", HOWTO_KEYS, illicit=0.8),
    _rule("sell_me_drugs", rf"(?:sell|give|get|find|bring) me (?:some |more )?{DRUG}",
          DRUG.first, illicit=0.7),
    _rule("where_to_buy_drugs", rf"(?:buy|get|order|score|find) (?:some )?{DRUG} "
          r"(?:online|on the dark web|without a prescription|without prescription|near me|"
          r"cheap|from a dealer)", DRUG.first, illicit=0.75),
    _rule("evade_detection", alt([
        "without getting caught", "without being caught", "without anyone knowing",
        "without anyone noticing", "without leaving a trace", "without leaving any trace",
        "without leaving evidence", "without leaving fingerprints", "without a trace",
        "so no one finds out", "so nobody finds out", "cover my tracks", "untraceable",
        "on the dark web", "on the darknet",
    ]), illicit=0.45),
    # self-harm
    _rule("self_harm_intent", rf"{INTENT_I}{SELF_ACT}", SELF_ACT.first,
          self_harm__intent=0.85, self_harm=0.8),
    _rule("self_harm_intent_ing", rf"{INTENT_ING} {SELF_ACT_ING}", SELF_ACT_ING.first,
          self_harm__intent=0.8, self_harm=0.8),
    _rule("self_harm_act", SELF_ACT_STRONG, self_harm__intent=0.6, self_harm=0.7),
    _rule("despair", alt([
        "i do not want to live", "i do not want to be alive", "i do not want to exist",
        "i do not want to wake up", "i want to die", "i wanna die", "i just want to die",
        "i wish i was dead", "i wish i were dead", "i wish i was never born",
        "i wish i had never been born", "no reason to live", "nothing to live for",
        "better off dead", "better off without me", "i am suicidal", "i feel suicidal",
        "i have been suicidal", "goodbye cruel world", "my suicide note", "a suicide note",
        "i can not go on", "i can not do this anymore", "i want it all to end",
        "i want everything to end", "ready to die", "i do not want to be here anymore",
    ]), self_harm__intent=0.75, self_harm=0.75),
    _rule("self_harm_soon", rf"{_SOON_ACT}(?: \w+){{0,4}} {TIME_SOON}", _SOON_ACT.first,
          self_harm__intent=0.6, self_harm=0.3),
    _rule("self_harm_means", r"i (?:have|bought|got|saved|stockpiled|collected|am saving|"
          r"have been saving) (?:enough |all the |some |a )?(?:pills|rope|a rope|razor blades|"
          r"razors|sleeping pills|painkillers)", {"pills", "rope", "razor", "razors",
                                                  "painkillers"},
          self_harm__intent=0.4, self_harm=0.4),
    _rule("howto_self_harm", rf"{HOWTO} (?:go about )?{_SELF_HARM_HOWTO}", HOWTO_KEYS,
          self_harm__instructions=0.9, self_harm=0.85),
    _rule("suicide_method", r"(?:painless|painlessly|quickest|quick|fastest|easiest|best|"
          r"surest|most effective|least painful|peaceful|cleanest|reliable) (?:way|ways|method|"
          r"methods) (?:to|of) (?:die|dying|kill myself|commit suicide|suicide|end my life|"
          r"end it|end ones life|end it all|kill yourself|overdose|killing myself)",
          {"way", "ways", "method", "methods"},
          self_harm__instructions=0.9, self_harm=0.85),
    _rule("lethal_amount", r"how (?:many|much) (?:\w+ ){0,3}(?:does it take |would it take |"
          r"do i need |to take |should i take |is needed )?(?:to|would|will) (?:kill|die|"
          r"overdose|od|be fatal|be lethal|stop my heart|kill me|kill a person|not wake up)",
          {"how"}, self_harm__instructions=0.85, self_harm=0.7),
    _rule("lethal_dose", r"(?:lethal|fatal|deadly) (?:dose|amount|overdose)",
          {"dose", "amount", "overdose"}, self_harm__instructions=0.15, self_harm=0.25),
    _rule("self_harm_topic", r"(?:kill|killed|killing|kills|hurt|hurting|hurts|cut|cutting|"
          r"cuts|harm|harming|harms|hang|hanged|hanging|hangs|starve|starving|starves|shot|"
          r"shoot|shoots|overdosed|poisoned|burn|burning) (?:himself|herself|themselves|"
          r"themself)|(?:tried|attempted|attempting|trying) (?:to )?(?:suicide|"
          r"kill (?:him|her|them)self)", _SELF_TOPIC_ANCHORS, self_harm=0.4),
    _rule("pro_ana", alt([
        "pro ana tips", "pro mia tips", "thinspo", "thinspiration", "meanspo", "bonespo",
        "pro ana", "pro mia",
    ]), self_harm=0.6, self_harm__instructions=0.5),
    # harassment
    _rule("tell_to_die", alt([
        "kill yourself", "go kill yourself", "go die", "go and die", "drink bleach",
        "nobody likes you", "nobody loves you", "no one loves you", "no one likes you",
        "everyone hates you", "everybody hates you", "world would be better without you",
        "world is better without you", "you should die", "you should be dead",
        "you should not exist", "you should not have been born", "you deserve to die",
        "you deserve to suffer", "you deserve to be raped", "you deserve to be hurt",
        "you deserve to be killed", "you deserve to rot", "i hope you die",
        "i hope you get raped", "i hope you get cancer", "i hope you suffer", "i hope you rot",
        "i hope you get hit by a car", "you should just die", "just die", "you need to die",
        "you should go die", "you must die", "please die", "die already",
        "i hope you get hit by a bus", "die in a fire",
        "hang yourself", "neck yourself", "unalive yourself", "end yourself",
    ]), harassment=0.85, harassment__threatening=0.55, violence=0.3),
    # hate
    _rule("dehumanise_group", rf"{_GROUP_SUBJECT} (?:are|is) (?:all |just |nothing but |like |"
          rf"no better than |basically |literally |a bunch of |such |so |fucking )*"
          rf"(?:a |an )?{_DEHUMAN}", GROUP.last, hate=0.85, harassment=0.4),
    _rule("hate_group", rf"(?:i|we) (?:really |just |fucking |truly |all )?(?:hate|despise|"
          rf"loathe|detest|cannot stand|can not stand) {_GROUP_SUBJECT}"
          r"(?! (?:who|that|which|when|like)\b)", GROUP.last, hate=0.75),
    _rule("group_should_die", rf"{_GROUP_SUBJECT} (?:should|must|need to|deserve to|ought to) "
          r"(?:all )?(?:die|be killed|be exterminated|be gassed|be shot|be hanged|be hung|"
          r"be lynched|be burned|be wiped out|be eradicated|be eliminated|be put down|burn|"
          r"be raped|rot)", GROUP.last, hate=0.85, hate__threatening=0.85, violence=0.6),
    _rule("group_exclusion", rf"{_GROUP_SUBJECT} (?:should|must|need to|deserve to|ought to) "
          r"(?:all )?(?:go back|be deported|be banned|not be allowed|not have rights|"
          r"not vote|be sterilized|be segregated|be locked up)", GROUP.last, hate=0.65),
    _rule("attack_group", rf"(?:kill|exterminate|gas|eradicate|wipe out|eliminate|lynch|shoot|"
          rf"hang|burn|slaughter|massacre|nuke|bomb) (?:all |all the |all of the |every |the )"
          rf"{GROUP}", GROUP.last, hate=0.75, hate__threatening=0.85, violence=0.7),
    _rule("death_to_group", rf"death to (?:all |the )?{GROUP}", GROUP.last,
          hate=0.8, hate__threatening=0.85, violence=0.6),
    # sexual
    _rule("explicit_request", r"(?:write|describe|tell|give|create|generate|roleplay|narrate|"
          r"make|send) (?:me |us )?(?:a |an |some )?(?:very |really |super |extremely )?"
          r"(?:explicit|erotic|graphic|nsfw|dirty|steamy|smutty|x rated|pornographic|lewd|"
          rf"kinky|raunchy|hardcore|sexual|sexy) (?:sex |sexual )?{_EXPLICIT_NOUN}",
          _EXPLICIT_NOUN.first, sexual=0.75),
    _rule("nudes", r"(?:send|show|post|share|leak|trade|sell|want|get) (?:me |us )?"
          rf"(?:your |her |his |their |some |more )?{_NUDES}", _NUDES.first, sexual=0.7),
    _rule("sex_with", r"(?:have|had|having|want|wanna) sex with", {"sex"}, sexual=0.35),
    _rule("csam_terms", alt([
        "child porn", "child pornography", "cp links", "csam", "kiddie porn", "kiddy porn",
        "lolicon", "shotacon", "pedo porn", "preteen nudes", "underage nudes", "underage porn",
        "teen nudes", "child nudes", "nude children", "naked children", "naked kids",
    ]), sexual__minors=0.9, sexual=0.8),
    # Present and infinitive forms only: "I was molested as a child" is a disclosure, and
    # blocking a survivor's request for help is the worse error.
    _rule("sexual_act_minor", rf"{_MINOR_ACT} (?:a |an |the |my |his |her |some |this |that |"
          rf"your )?(?:\w+ ){{0,2}}{MINOR_CORE}", _MINOR_ACT.first,
          sexual__minors=0.85, sexual=0.6),
    _rule("groom_minor", rf"{HOWTO} (?:groom|molest|seduce|touch|undress|lure|sleep with|"
          r"have sex with|get nudes from|sext) (?:a |an |the |my |his |her |some )?"
          r"(?:young |little |underage )?(?:child|children|kid|kids|minor|minors|girl|boy|"
          r"preteen|teen|teenager|student|daughter|son|niece|nephew|stepdaughter)",
          HOWTO_KEYS, sexual__minors=0.9, sexual=0.6),
)
"""Phrase rules, matched against normalised text; each counts once per text."""


SEXUAL_EXPLICIT = (
    "porn", "porno", "pornography", "pornographic", "blowjob", "blow job", "handjob",
    "hand job", "cumshot", "creampie", "gangbang", "gang bang", "orgy", "jizz", "dildo",
    "masturbate", "masturbates", "masturbated", "masturbating", "masturbation",
    "deepthroat", "fellatio", "cunnilingus", "xxx", "hentai", "anal sex", "oral sex",
    "sex tape", "nudes", "sexting", "fuck me", "fucked her", "fucked him", "suck my",
    "her pussy", "cum", "cumming", "horny", "erotic", "erotica",
    "smut", "nsfw", "bdsm", "threesome", "69", "rimjob", "rim job", "titjob", "pegging",
    "squirting", "clit", "milf", "onlyfans", "camgirl", "escort service", "hooker",
)
"""Project-written: terms that are sexual in nearly every use."""

SEXUAL_SUGGESTIVE = (
    "sex", "sexy", "sexual", "sexually", "naked", "nude", "aroused", "arousal", "orgasm",
    "penis", "vagina", "breasts", "boobs", "tits", "nipples", "genitals", "cock", "pussy",
    "dick", "lingerie", "stripper", "strip", "seduce", "seductive", "kinky", "fetish",
    "bondage", "intercourse", "erection", "make love", "making love", "foreplay", "thong",
    "undress", "undressing", "moan", "moaning", "lust", "slutty", "slut", "whore", "panties",
)
"""Project-written: terms that are often but not always sexual (sex education, medicine)."""

HARASSMENT_EXTRA = (
    "piece of shit", "piece of garbage", "piece of trash", "waste of space",
    "waste of oxygen", "scum", "scumbag", "subhuman", "vermin", "disgrace", "freak", "creep",
    "dumbass", "imbecile", "cretin", "halfwit", "dimwit", "twit", "bitch", "skank", "cunt",
    "asshole", "bastard", "pig", "slob", "failure", "nobody", "parasite", "coward",
    "shithead", "dickhead", "douchebag", "prick", "wanker", "tosser", "jerk", "clown",
)
"""Project-written insults that only count when aimed at "you"."""

ATTACK_VERBS = (
    "kill", "killing", "murder", "shoot", "shooting", "stab", "lynch", "hang", "gas",
    "exterminate", "burn", "slaughter", "massacre", "nuke", "bomb", "eradicate", "wipe out",
    "beat up", "rape", "execute", "deport",
)
"""Verbs that, just before a slur, make it hate/threatening."""

YOU_WORDS = frozenset({"you", "your", "yourself", "ya", "thee", "youre"})
DIRECTED_FILLERS = frozenset({
    "are", "were", "r", "is", "look", "looks", "sound", "seem", "a", "an", "such", "so", "the",
    "one", "fucking", "fuckin", "effing", "stupid", "dumb", "little", "total", "complete",
    "absolute", "pathetic", "worthless", "ugly", "fat", "big", "useless", "real", "just",
    "like", "dirty", "filthy", "lazy", "sick", "old", "utter", "bloody", "damn",
    "goddamn", "disgusting", "miserable", "sad",
})
EXPLETIVES_BEFORE_YOU = frozenset({"fuck", "screw", "damn", "f", "fk", "fck", "fuk", "stfu"})

CAPS: Mapping[str, float] = MappingProxyType({
    "violence": 0.35, "graphic": 0.45, "selfharm": 0.45, "threat": 0.45, "illicit": 0.4,
    "insult": 0.4, "abuse": 0.3, "slur": 0.95, "sexual_explicit": 0.9,
    "sexual_suggestive": 0.4,
})
"""Highest score a lexicon alone can give (context-free words stay under 0.5)."""

LEXICON_EFFECTS: Mapping[str, tuple[tuple[str, float], ...]] = MappingProxyType({
    # list name -> (category, weight per distinct term); slur weights come from severity
    "violence": (("violence", 0.12),),
    "graphic": (("violence/graphic", 0.15), ("violence", 0.05)),
    "selfharm": (("self-harm", 0.2),),
    "threat": (("harassment/threatening", 0.45), ("harassment", 0.3), ("violence", 0.2)),
    "illicit": (("illicit", 0.15),),
    "insult": (("harassment", 0.15),),
    "abuse": (("harassment", 0.1),),
    "slur": (("hate", 1.0), ("harassment", 0.35)),
    "sexual_explicit": (("sexual", 0.4),),
    "sexual_suggestive": (("sexual", 0.15),),
})

PHRASE_STRENGTH: Mapping[str, float] = MappingProxyType({"selfharm": 1.5, "illicit": 2.0})
"""Multi-word entries of these lists are stronger cues than their single words."""

DAMPENED_LISTS = frozenset({"violence", "threat"})
"""Lexicons damped, like ``benign_dampened`` rules, by :data:`BENIGN_CONTEXT`."""

IMPLIES: tuple[tuple[str, str, float], ...] = (
    ("self-harm/intent", "self-harm", 0.9),
    ("self-harm/instructions", "self-harm", 0.9),
    ("harassment/threatening", "harassment", 0.9),
    ("hate/threatening", "hate", 0.9),
    ("illicit/violent", "illicit", 0.9),
    ("sexual/minors", "sexual", 0.9),
    ("harassment/threatening", "violence", 0.8),
    ("hate/threatening", "violence", 0.8),
)
"""(child, parent, share): a sub-category scores its parent at least ``share`` of itself."""

AMBIGUOUS_SLURS = frozenset({"coon", "coons", "chink", "homo", "homos", "jap", "nig"})
"""Slurs with a common harmless sense ("chink in the armour", "homo sapiens")."""


def slur_weight(term: str, severity: float) -> float:
    """Severe slurs flag ``hate`` on their own; milder or ambiguous ones need company."""
    if term in AMBIGUOUS_SLURS or severity < 2.5:
        return 0.4
    return 0.8

"""Street addresses, which spaCy's NER finds only in pieces (if at all).

An address is recognised by its *structure*, not by a list of places:

1. a street core, one of
   - house number + street name + street type: ``1600 Pennsylvania Avenue``, ``12 Main St``
     (types: the USPS suffix list plus common British ones);
   - a street word with a national street-type ending or prefix + house number:
     ``Friedhofstrasse 33``, ``Östbygatan 14``, ``Via Roma 131``, ``ul. Zamkowa 33``,
     ``20 Rue Hsine Eloued``;
   - a post-office box or a US military address (``PSC 1234, Box 5678``, ``USS Nimitz``
     followed by ``FPO AP 96601``);
   - a bare ``Name 12`` only as weak evidence (it is also "Windows 10");
2. optionally extended over what follows it (unit, city, state or region code, postcode,
   country, on the same line after commas or on the next lines) and what precedes it (a
   unit, a postcode or building number).

The score grows with the evidence: a typed street alone scores 0.75, each extra part adds,
a bare ``Name 12`` scores 0.3 and reaches the default threshold only with more structure or
a context word ("address", "live", ...), which Presidio's context enhancer adds.
All-lowercase texts ("i live at 12 main street") are matched as if capitalised, with a
small penalty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def _upper_class() -> str:
    """A ``re`` character class of the upper-case letters of every script.

    The stdlib ``re`` has no ``\\p{Lu}``; building the class once keeps this module free of
    a dependency on the third-party ``regex`` package. Upper-case letters all lie below
    U+20000 (the last are Adlam's, around U+1E900).
    """
    codes = [code for code in range(0x20000) if chr(code).isupper()]
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    parts = [re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges]
    return "[" + "".join(parts) + "]"


UPPER = _upper_class()
_UP = UPPER  # upper-case letters, any script
_L = r"[^\W\d_]"  # any letter
CAPITALISED_WORD = rf"{_UP}{_L}*(?:['\u2019-]{_L}+)*"  # O'Neil, Vana-Viru, ÅLESUND
_CAP = CAPITALISED_WORD
_CAP_DOT = rf"{_CAP}\.?"
_ORDINAL = r"\d{1,3}(?:st|nd|rd|th)"
CONNECTOR = (
    r"(?:de|do|da|dos|das|del|della|delle|dei|degli|di|du|des|la|le|les|el|los|las"
    r"|van|von|der|den|ter|am|an|im|in|auf|nad|pod|na|y|e|i)"
)
# Words that start a new sentence or a labelled line, never a place name in an address.
NOT_PLACE = (
    r"(?:Please|Thanks|Thank|Call|Email|E-mail|Mail|Phone|Mobile|Fax|Tel|Desk|Office|Home"
    r"|Work|Website|Web|Best|Regards|Cheers|Dear|Hi|Hello|Hey|Yes|No|Ok|Okay|And|Or|But|So"
    r"|If|When|Then|The|A|An|I|My|We|Our|You|Your|He|She|It|Its|They|Their|This|That"
    r"|There|Here|What|Where|Who|How|Why|Is|Are|Was|Were|Be|Can|Could|Will|Would|Should"
    r"|Do|Does|Did|Have|Has|Had|Not|For|From|To|At|On|In|Of|With|By|As|After|Before"
    r"|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|Today|Tomorrow|Tonight"
    r"|Name|Address|Date|Card|Number|Account|Order|Ref|Reference|Subject|Sent|Sender"
    # units of time and distance: "a 10 minute drive", "3 miles down the road"
    r"|Minutes?|Mins?|Hours?|Hrs?|Days?|Weeks?|Months?|Years?|Times?|Miles?|Km|Kms"
    r"|Kilometers?|Kilometres?|Meters?|Metres?|Feet|Foot|Ft|Blocks?|Steps?|Stops?)"
)


def _words(text: str) -> list[str]:
    return text.split()


# USPS Publication 28, Appendix C1 street suffixes (names and standard abbreviations)
# plus common British/Commonwealth ones. Longest first so alternation prefers them.
_US_TYPES = sorted(
    _words(
        """
    Alley Aly Annex Anx Arcade Arc Avenue Ave Av Bayou Beach Bend Bluff Bluffs Bottom
    Boulevard Blvd Branch Br Bridge Brg Brook Brooks Burg Burgs Bypass Byp Camp Canyon
    Cape Causeway Cswy Center Ctr Centre Circle Cir Circles Cliff Cliffs Club Common Commons
    Corner Corners Course Court Ct Courts Cts Cove Coves Creek Crescent Cres Crest Crossing
    Xing Crossroad Crossroads Curve Dale Dam Divide Drive Dr Drives Estate Estates
    Expressway Expy Extension Ext Extensions Falls Ferry Field Fields Flat Flats Ford Fords
    Forest Forge Forges Fork Forks Fort Freeway Fwy Garden Gardens Gdns Gateway Glen Glens
    Green Greens Grove Groves Harbor Harbors Haven Heights Hts Highway Hwy Hill Hills Hollow
    Inlet Island Islands Isle Junction Jct Junctions Key Keys Knoll Knolls Lake Lakes Land
    Landing Lane Ln Light Lights Loaf Lock Locks Lodge Loop Mall Manor Manors Meadow Meadows
    Mews Mill Mills Mission Motorway Mount Mountain Mountains Neck Orchard Oval Overpass
    Park Parks Parkway Pkwy Parkways Pass Passage Path Pike Pine Pines Place Pl Plain
    Plains Plaza Plz Point Points Port Ports Prairie Radial Ramp Ranch Rapid Rapids Rest
    Ridge Ridges River Road Rd Roads Route Rte Row Rue Run Shoal Shoals Shore Shores Skyway
    Spring Springs Spur Spurs Square Sq Squares Station Sta Stravenue Stream Street St Str
    Streets Summit Terrace Ter Throughway Trace Track Trafficway Trail Trl Trailer Tunnel
    Turnpike Tpke Underpass Union Unions Valley Valleys Viaduct View Views Village Villages
    Ville Vista Walk Walks Wall Way Ways Well Wells Close Rise Wynd Parade Esplanade
    Promenade Quay Embankment Grange Approach Chase Drove Gate Hey Lea Nook
    """
    ),
    key=len,
    reverse=True,
)
_US_TYPE = r"(?:" + "|".join(_US_TYPES) + r")\b\.?"

# Street-type endings of one-word street names in continental Europe and the Nordics
# (Friedhofstrasse, Östbygatan, Skoanveien, Vesterskovvej, Koskikatu, Parijsstraat, ...).
_SUFFIX_TYPES = (
    r"(?:straße|strasse|str\.|gasse|weg|allee|platz|damm|ufer|steig|brücke|markt"
    r"|gatan|vägen|väg|gränd|stigen|backen|torget|gata|veien|vegen|vei|vej|vænget|gade"
    r"|stræde|plads|katu|kuja|polku|kaari|tie|raitti|straat|laan|plein|gracht|dijk|kade"
    r"|steeg|braut|vegur|gil|stígur|utca|ulice|ulica|iela|gatve|tänav)"
)
# Street-type words that stand after the name (Rákóczi út 13., Luite tee 87, Villacher
# Strasse 89, Filadelfeos Str. 5).
_POST_TYPES = (
    r"(?:utca|u\.|út|útja|tér|körút|krt\.|rkp\.|sor|köz|tee|tänav|cesta|ulica|iela|gatve"
    r"|kapu|fasor|sétány|part|terrasse|gade|vej|allé|veien|vegen|gata|gatan|vägen|straße"
    r"|strasse|str\.|Str"
    r"|gasse|weg|allee|platz|laan|straat|katu|tie|kuja)(?!\w)\.?"
)
# Street-type words that stand before the name (Via Roma 131, ul. Zamkowa 33).
_PRE_TYPES = (
    r"(?:Via|Viale|Piazza|Piazzale|Corso|Largo|Vicolo|Contrada|Strada|Rue|Avenue|Boulevard"
    r"|Bd|Chemin|Allée|Impasse|Quai|Calle|C/|Avenida|Avda\.?|Av\.|Paseo|Pasaje|Carrer"
    r"|Camino|Ronda|Rua|Rúa|Travessa|Praça|Estrada|Alameda|Rambla|ul\.|ulica|al\.|aleja"
    r"|pl\.|os\.|trg|náměstí|nám\.|Λεωφόρος|Λεωφ\.|Οδός|Πλατεία|Bulevardul|Calea|Ulitsa"
    r"|Prospekt)(?!\w)"
)

_HOUSE = r"\d{1,5}(?:[A-Za-z]\b|/\d{1,4}|-\d{1,4})?\.?"  # 12, 12A, 12/3, 12-14, 19. (Hungarian)
_NAME_WORD = rf"(?:(?!{NOT_PLACE}\b){_CAP_DOT}|{_ORDINAL}|\d{{1,4}})"
_PRE_NAME = rf"(?:(?:{_CAP_DOT}|{CONNECTOR}|{_ORDINAL}|\d{{1,3}})[ \t]+){{0,4}}{_CAP_DOT}"

_DIRECTION = r"(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\.?"

_CORES: tuple[tuple[str, float], ...] = (
    # 1600 Pennsylvania Avenue NW, 9448 175 Iroon Polytechniou Avenue, 12 W. 5th St
    (
        rf"\b\d{{1,6}}[A-Za-z]?(?:[ \t]+{_DIRECTION})?(?:[ \t]+{_NAME_WORD}){{1,4}}"
        rf"[ \t]+(?i:{_US_TYPE})(?:[ \t]+{_DIRECTION}(?![\w']))?",
        0.75,
    ),
    # Friedhofstrasse 33, C. Beerninckstraat 88, Brucker Bundesstrasse 31
    (rf"(?:{_CAP_DOT}[ \t]+){{0,2}}{_UP}{_L}*(?i:{_SUFFIX_TYPES})[ \t]+{_HOUSE}", 0.75),
    # Rákóczi út 13., Villacher Strasse 89, Luite tee 87
    (rf"(?:{_NAME_WORD}[ \t]+){{1,3}}(?i:{_POST_TYPES})[ \t]*,?[ \t]+{_HOUSE}", 0.75),
    # Via dei Fiorentini 17, ul. Zamkowa 33, Avenida Pedro Ulisses 888
    (rf"\b(?i:{_PRE_TYPES})[ \t]+{_PRE_NAME}[ \t]*,?[ \t]+{_HOUSE}", 0.75),
    # 20 Rue Hsine Eloued, 33 avenue de Provence
    (rf"\b\d{{1,5}}[ \t]+(?i:{_PRE_TYPES})[ \t]+{_PRE_NAME}", 0.75),
    # PO Box 287, P.O. Box 12
    (r"\b(?i:p\.?[ \t]?o\.?[ \t]?box|post[ \t]office[ \t]box)[ \t]+\d{1,6}\b", 0.85),
    # PSC 1234, Box 5678 / Unit 8524 Box 0979 / CMR 402 Box 1 / USS Nimitz — then APO/FPO/DPO
    (
        rf"\b(?:(?i:psc|cmr|unit)[ \t]+\d{{1,5}},?[ \t]+(?i:box)[ \t]+\d{{1,5}}"
        rf"|(?i:uss|usns|usnv|uscgc)[ \t]+{_CAP}(?:[ \t]+{_CAP})?)"
        rf"[ \t]*,?[ \t]*\n?[ \t>]*(?i:apo|fpo|dpo)[ \t]+(?i:aa|ae|ap)[ \t]+\d{{5}}(?:-\d{{4}})?\b",
        0.95,
    ),
    # Kaevu 94, Pagari 18: structure like an address but weak on its own. Not acronyms
    # ("DOB 03/14/1962", "MRN 0048") and not the start of a date, time or range.
    (
        rf"\b(?!{NOT_PLACE}\b)(?!{_UP}{{2,4}}\b){_CAP}(?:[ \t]+{_CAP}){{0,2}}"
        r"[ \t]+\d{1,4}[A-Za-z]?\b(?![/.:\-]\d)",
        0.3,
    ),
)

_UNIT = (
    r"(?i:apt|apartment|suite|ste|unit|flat|fl|floor|room|rm|bldg|building|block|box)\.?"
    r"[ \t]*#?[ \t]*\d{1,6}[A-Za-z]?\b|#[ \t]?\d{1,5}\b"
)
_POSTCODE = (
    rf"(?:\d{{5}}(?:-\d{{4}})?|\d{{4}}|\d{{2}}-\d{{3}}|\d{{3}}[ \t]\d{{2}}"
    rf"|{_UP}\d{_UP}[ \t]?\d{_UP}\d|{_UP}{{1,2}}\d[{_UP[1:-1]}\d]?[ \t]?\d{_UP}{{2}})"
    r"(?![\w-]|[ \t]\d)"  # "416 60 039" on the next line is a phone number, not a postcode
)
_STATE = rf"{_UP}{{2,3}}(?![\w'])"
_PLACE_WORD = rf"(?!{NOT_PLACE}\b){_CAP}"
_PLACE = (
    rf"{_PLACE_WORD}(?:(?:[ \t]+|-)(?:{_PLACE_WORD}|{CONNECTOR}(?=[ \t]+{_UP}))){{0,3}}"
    r"(?:[ \t]+\([^()\n]{1,30}\))?(?![\w:@'])"
)
_ALLCAPS_PLACE = rf"{_UP}{{3,}}(?:[ \t-]+{_UP}{{2,}}){{0,2}}(?![\w:@'])"

# A comma and/or a line break (one blank line at most), then any quote or bullet markers.
_MARKERS = r"[ \t>*•·|?-]*"
_SEP_LINE = rf"[ \t]*(?:,[ \t]*(?:\n{_MARKERS}){{0,2}}|(?:\n{_MARKERS}){{1,2}}(?:,[ \t]*)?)"
_SEP_SPACE = r"[ \t]+"

_UNIT_RE = re.compile(_UNIT)
_POSTCODE_RE = re.compile(_POSTCODE)
_STATE_RE = re.compile(_STATE)
_PLACE_RE = re.compile(_PLACE)
_ALLCAPS_PLACE_RE = re.compile(_ALLCAPS_PLACE)
_SEP_LINE_RE = re.compile(_SEP_LINE)
_SEP_SPACE_RE = re.compile(_SEP_SPACE)
_DIGIT_RE = re.compile(r"\d")
_CORE_RES = tuple((re.compile(pattern), score) for pattern, score in _CORES)
_LEAD_NUMBER_RE = re.compile(r"(?:^|(?<=[\s>,*•·|?-]))\d{1,6}[ \t]+$")
_LEAD_UNIT_RE = re.compile(rf"(?:{_UNIT})[ \t,]+$")
_CORNER_RE = re.compile(r"(?i:corner|intersection|junction)[ \t]+of[ \t]+$")
_AND_STREET_RE = re.compile(
    rf"[ \t]+(?:and|&)[ \t]+(?:\d{{1,5}}[ \t]+)?{_CAP}(?:[ \t]+{_CAP}){{0,2}}"
    rf"(?:[ \t]+(?i:{_US_TYPE}))?(?:[ \t]+\d{{1,5}})?"
)

_TYPED = 0.75  # base score of a street core with a street type
_EXTRA = 0.1  # score added per extra address part (unit, postcode, city, ...)
_MAX_SCORE = 0.95
_LOWERCASE_PENALTY = 0.1
_MAX_PARTS = 6


@dataclass(frozen=True, slots=True)
class AddressMatch:
    """An address found in a text: ``text[start:end]`` and how sure we are."""

    start: int
    end: int
    score: float


def _extend_right(text: str, end: int, after_corner: bool) -> tuple[int, int]:
    """Extend an address core over the parts that follow it; returns (end, parts found)."""
    parts = 0
    if after_corner and (m := _AND_STREET_RE.match(text, end)):
        end, parts = m.end(), parts + 1
    previous_structured = False  # was the last part a unit or postcode?
    for _ in range(_MAX_PARTS):
        line = _SEP_LINE_RE.match(text, end)
        space = _SEP_SPACE_RE.match(text, end)
        found = None
        for sep in (line, space):
            if sep is None:
                continue
            at = sep.end()
            on_new_line = sep is line
            for kind, regex in (
                ("unit", _UNIT_RE),
                ("postcode", _POSTCODE_RE),
                ("state", _STATE_RE),
                ("allcaps", _ALLCAPS_PLACE_RE),
                ("place", _PLACE_RE),
            ):
                m = regex.match(text, at)
                if m is None:
                    continue
                if kind == "place" and not (on_new_line or previous_structured):
                    # "12 Main St Springfield IL": a place after a space needs a region
                    # code or postcode right after it.
                    rest = _SEP_SPACE_RE.match(text, m.end())
                    nxt = rest.end() if rest else m.end()
                    if not (_STATE_RE.match(text, nxt) or _POSTCODE_RE.match(text, nxt)):
                        continue
                found = (kind, m.end())
                break
            if found:
                break
        if found is None:
            break
        kind, end = found
        previous_structured = kind in ("unit", "postcode", "allcaps")
        parts += 1
    return end, parts


def _extend_left(text: str, start: int) -> tuple[int, int]:
    """Extend an address core over units and building/postcode numbers before it."""
    parts = 0
    for _ in range(3):
        for regex in (_LEAD_UNIT_RE, _LEAD_NUMBER_RE):
            m = regex.search(text, max(0, start - 40), start)
            if m is not None and m.end() == start:
                start, parts = m.start(), parts + 1
                break
        else:
            break
    return start, parts


def _capitalise_words(text: str) -> str:
    """Upper-case the first letter of every word, keeping the length (and so offsets)."""
    out = []
    previous_is_letter = False
    for char in text:
        is_letter = char.isalpha()
        if is_letter and not previous_is_letter:
            upper = char.upper()
            out.append(upper if len(upper) == 1 else char)
        else:
            out.append(char)
        previous_is_letter = is_letter or char in "'\u2019"
    return "".join(out)


ADDRESS_CONTEXT = [
    "address",
    "addr",
    "street",
    "live",
    "living",
    "located",
    "location",
    "reside",
    "residence",
    "apartment",
    "deliver",
    "ship",
    "mail",
    "billing",
    "postal",
    "zip",
    "postcode",
    "moved",
    "meet",
    "office",
    "visit",
    "corner",
    "drop",
    "stop",
]
"""Words near an address that raise its score (Presidio's context enhancer)."""


def find_address_spans(text: str) -> list[tuple[int, int, float]]:
    """:func:`find_addresses` as ``(start, end, score)`` tuples."""
    return [(m.start, m.end, m.score) for m in find_addresses(text)]


def find_addresses(text: str) -> list[AddressMatch]:
    """Street addresses in ``text``, merged so that they never overlap.

    >>> find_addresses("Ship it to 1600 Main Street, Springfield, IL 62704 please.")
    [AddressMatch(start=11, end=50, score=0.95)]
    """
    if not _DIGIT_RE.search(text):
        return []  # every street, box or military address has a number
    penalty = 0.0
    haystack = text
    if not any(c.isupper() for c in text):
        haystack, penalty = _capitalise_words(text), _LOWERCASE_PENALTY
    found: list[AddressMatch] = []
    for regex, base in _CORE_RES:
        for m in regex.finditer(haystack):
            start, end = m.start(), m.end()
            after_corner = bool(_CORNER_RE.search(haystack, max(0, start - 30), start))
            end, right = _extend_right(haystack, end, after_corner)
            start, left = _extend_left(haystack, start)
            parts = right + left + after_corner
            if penalty and base < _TYPED and parts < 2:
                # Capitalised by us, every "word 12" looks like a bare street.
                continue
            score = min(_MAX_SCORE, base + _EXTRA * parts) - penalty
            # A trailing "." belongs to the sentence unless it ends an abbreviation.
            while end > start and haystack[end - 1] in ".," and not _ends_abbreviation(haystack, end):
                end -= 1
            found.append(AddressMatch(start, end, round(score, 3)))
    return _merge(found)


def _ends_abbreviation(text: str, end: int) -> bool:
    """Whether the "." at ``text[end - 1]`` ends an abbreviation ("St.", "Apt.")."""
    word = re.search(r"(\w+)\.$", text[max(0, end - 12) : end])
    return word is not None and len(word.group(1)) <= 4 and not word.group(1).isdigit()


def _merge(matches: list[AddressMatch]) -> list[AddressMatch]:
    """Union overlapping matches; the union keeps the best score."""
    merged: list[AddressMatch] = []
    for m in sorted(matches, key=lambda m: (m.start, -m.end)):
        if merged and m.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = AddressMatch(last.start, max(last.end, m.end), max(last.score, m.score))
        else:
            merged.append(m)
    return merged

"""Where countries are: ISO 3166 alpha-2 country code -> continent code, and names.

The continent of each country is data, not code: the table below is the one in the PyPI package
pycountry-convert 0.7.2 (MIT; `COUNTRY_ALPHA2_TO_CONTINENT_CODE`, itself from Wikipedia's "List of
sovereign states and dependent territories by continent (data file)"), restricted to the codes of
ISO 3166-1 as pycountry 26.2.16 lists them plus XK (Kosovo, the user-assigned code in common use),
with the eight ISO codes it lacks added from the same Wikipedia list: AQ, TF (AN), EH (AF), PN, UM
(OC), SX (NA), TL (AS), VA (EU). A country that spans two continents is under the one that list gives
first (RU: EU; TR, CY: AS). tests/test_geo.py checks every ISO 3166-1 code has a continent.
"""

from __future__ import annotations

import functools

CONTINENT_NAMES = {
    "AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe", "NA": "North America", "OC": "Oceania",
    "SA": "South America",
}

_COUNTRIES_BY_CONTINENT = {
    "AF": ("AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE "
           "KM LR LS LY MA MG ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST "
           "SZ TD TG TN TZ UG YT ZA ZM ZW"),
    "AN": ("AQ BV HM TF"),
    "AS": ("AE AF AM AZ BD BH BN BT CC CN CX CY GE HK ID IL IN IO IQ IR JO JP KG KH "
           "KP KR KW KZ LA LB LK MM MN MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TL "
           "TM TR TW UZ VN YE"),
    "EU": ("AD AL AT AX BA BE BG BY CH CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE "
           "IM IS IT JE LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK "
           "SM UA VA XK"),
    "NA": ("AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY "
           "LC MF MQ MS MX NI PA PM PR SV SX TC TT US VC VG VI"),
    "OC": ("AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV UM VU "
           "WF WS"),
    "SA": ("AR BO BR CL CO EC FK GF GS GY PE PY SR UY VE"),
}

CONTINENT_OF_COUNTRY: dict[str, str] = {
    country: continent for continent, countries in _COUNTRIES_BY_CONTINENT.items() for country in countries.split()
}


def continent_of(country: str) -> str:
    """The continent code of an ISO 3166 alpha-2 country code (any case); "" when unknown."""
    return CONTINENT_OF_COUNTRY.get(country.strip().upper(), "")


@functools.lru_cache(maxsize=512)
def country_names(country: str) -> frozenset[str]:
    """The names of a country code, lowercased: its ISO name, common and official names ("" when unknown)."""
    import pycountry  # only the scheduler matches names; the table above needs no package

    found = pycountry.countries.get(alpha_2=country.strip().upper()) if country.strip() else None
    if found is None:
        return frozenset({"kosovo"}) if country.strip().upper() == "XK" else frozenset()
    return frozenset(getattr(found, attr).lower() for attr in ("name", "common_name", "official_name")
                     if getattr(found, attr, None))

"""The site's accent colour, made readable: WCAG contrast against each theme's background.

An operator picks one accent (``[public] accent``); links and buttons use it where it reads
well (contrast of at least 4.5:1, WCAG 2 AA for text) and otherwise the nearest shade that
does: darker on the light theme, lighter on the dark one. Button text is white or near-black,
whichever reads better on the accent.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The page backgrounds the accent must read on (keep in step with public.css).
LIGHT_SURFACES = ("#ffffff", "#f5f6f8")
DARK_SURFACES = ("#14181d", "#1c2128")
READABLE = 4.5


def _channels(colour: str) -> tuple[float, float, float]:
    value = colour.lstrip("#")
    red, green, blue = (int(value[i : i + 2], 16) / 255 for i in (0, 2, 4))
    return red, green, blue


def _hex(red: float, green: float, blue: float) -> str:
    return "#" + "".join(f"{round(max(0.0, min(1.0, c)) * 255):02x}" for c in (red, green, blue))


def luminance(colour: str) -> float:
    """Relative luminance (WCAG 2)."""

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(c) for c in _channels(colour))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(one: str, other: str) -> float:
    """The WCAG contrast ratio of two colours (1 to 21)."""
    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _mix(colour: str, toward: str, share: float) -> str:
    ours, theirs = _channels(colour), _channels(toward)
    red, green, blue = (a + (b - a) * share for a, b in zip(ours, theirs, strict=True))
    return _hex(red, green, blue)


def readable_on(colour: str, surfaces: tuple[str, ...], toward: str) -> str:
    """`colour`, or the first mix of it toward `toward` (black or white) that reads at
    `READABLE` on every one of `surfaces`."""
    for step in range(21):
        shade = _mix(colour, toward, step / 20)
        if all(contrast(shade, surface) >= READABLE for surface in surfaces):
            return shade
    return toward


@dataclass(frozen=True)
class Accent:
    """The accent's shades for each theme, and the text to put on them."""

    light: str
    light_text: str
    dark: str
    dark_text: str

    def css(self) -> str:
        """The custom properties the stylesheet reads (served as /static/brand.css)."""
        return (
            f":root {{ --accent: {self.light}; --on-accent: {self.light_text}; }}\n"
            "@media (prefers-color-scheme: dark) {\n"
            f"  :root {{ --accent: {self.dark}; --on-accent: {self.dark_text}; }}\n"
            "}\n"
        )


def _text_on(colour: str) -> str:
    white, ink = "#ffffff", "#111418"
    return white if contrast(colour, white) >= contrast(colour, ink) else ink


def accent(colour: str) -> Accent:
    """The shades of `colour` (``#rrggbb``) for the light and the dark theme."""
    light = readable_on(colour.lower(), LIGHT_SURFACES, "#000000")
    dark = readable_on(colour.lower(), DARK_SURFACES, "#ffffff")
    return Accent(light, _text_on(light), dark, _text_on(dark))

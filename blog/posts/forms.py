import unicodedata

from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from blog.forms import strip
from blog.models import BODY_MAX, TAG_MAX, TAGS_PER_POST_MAX, TITLE_MAX, Tag

# Besides letters and digits of any script (with their combining marks, as in "हिन्दी"),
# the few characters tags like "c++", "c#", ".net" or "background jobs" need.
TAG_PUNCTUATION = " .+#-_"


def is_tag_name(name: str) -> bool:
    return name[:1] not in ("", " ", "-") and all(
        c in TAG_PUNCTUATION or unicodedata.category(c)[0] in "LMN" for c in name
    )


def parse_tags(text: str | None) -> list[str]:
    """Split "Ruby, rails,  Background Jobs" into ["ruby", "rails", "background jobs"].

    Names are normalised and de-duplicated in order; a bad one raises ``ValueError`` with a
    message for the user.
    """
    names = []
    for raw in (text or "").split(","):
        name = Tag.normalise(raw)
        if not name or name in names:
            continue
        if len(name) > TAG_MAX:
            raise ValueError(f"Tag “{raw.strip()[:20]}…” is longer than {TAG_MAX} characters.")
        if not is_tag_name(name):
            raise ValueError(
                f"Tag “{raw.strip()}” may hold only letters, digits, spaces "
                "and . + # - _ characters."
            )
        names.append(name)
    if len(names) > TAGS_PER_POST_MAX:
        raise ValueError(f"A post can have at most {TAGS_PER_POST_MAX} tags.")
    return names


def valid_tags(form, field):
    try:
        parse_tags(field.data)
    except ValueError as error:
        raise ValidationError(str(error)) from None


class PostForm(FlaskForm):
    title = StringField(
        "Title", filters=[strip], validators=[DataRequired(), Length(max=TITLE_MAX)]
    )
    body = TextAreaField("Body", validators=[DataRequired(), Length(max=BODY_MAX)])
    tags = StringField(
        "Tags",
        validators=[Length(max=1000), valid_tags],
        description=(
            "Comma-separated, e.g. ruby, rails, background jobs; kept in lower case (İstanbul "
            "becomes istanbul). More are added for you."
        ),
    )

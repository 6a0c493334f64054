"""The per-record table of report.html: search, filters, sort and paging in inline JS.

The records travel as one JSON array in a ``<script type="application/json">`` block
(``<`` written as ``\\u003c``, so no value can close the block) and the inline script
renders one page of rows at a time with ``textContent`` (never as markup), so a
100,000-record run stays a page the browser opens in about a second. The script's
SHA-256 goes into the page's Content-Security-Policy (:func:`script_hash`): no other
script can run.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from connector.report import RecordRow, RecordRows

__all__ = [
    "PAGE_SIZE",
    "TABLE_SCRIPT",
    "build_record_table",
    "changes_text",
    "iter_record_table",
    "script_hash",
]

PAGE_SIZE = 100

TABLE_SCRIPT = """(function(){
var D=JSON.parse(document.getElementById('rt-data').textContent);
var q=document.getElementById('rt-search'),fa=document.getElementById('rt-action'),
fo=document.getElementById('rt-outcome'),tb=document.getElementById('rt-body'),
ct=document.getElementById('rt-count'),pv=document.getElementById('rt-prev'),
nx=document.getElementById('rt-next'),hs=document.querySelectorAll('#rt th[data-k]');
var S=__PAGE_SIZE__,page=0,key=-1,dir=1,rows=D;
function opts(sel,k){var seen={};D.forEach(function(r){seen[r[k]]=1;});
Object.keys(seen).sort().forEach(function(v){var o=document.createElement('option');
o.value=v;o.textContent=v;sel.appendChild(o);});}
opts(fa,2);opts(fo,3);
function apply(){var t=q.value.trim().toLowerCase(),a=fa.value,o=fo.value;
rows=D.filter(function(r){if(a&&r[2]!==a)return false;if(o&&r[3]!==o)return false;
if(!t)return true;for(var i=0;i<r.length;i++){if(String(r[i]).toLowerCase().indexOf(t)>=0)
return true;}return false;});
if(key>=0){rows=rows.slice().sort(function(x,y){var p=String(x[key]),s=String(y[key]);
return p<s?-dir:p>s?dir:0;});}page=0;draw();}
function draw(){var n=rows.length,last=Math.max(0,Math.ceil(n/S)-1);
if(page>last)page=last;tb.textContent='';
rows.slice(page*S,(page+1)*S).forEach(function(r){
var tr=document.createElement('tr');tr.setAttribute('data-ext',r[0]);
r.forEach(function(v,i){var td=document.createElement('td');td.textContent=v;
if(i===0||i===4)td.className='c';if(i===6)td.className='ch';tr.appendChild(td);});tb.appendChild(tr);});
ct.textContent=n?('records '+(page*S+1)+'\\u2013'+Math.min(n,(page+1)*S)+
' of '+n+(n<D.length?' (filtered from '+D.length+')':'')):'no record matches';
pv.disabled=page<=0;nx.disabled=page>=last;}
q.addEventListener('input',apply);fa.addEventListener('change',apply);
fo.addEventListener('change',apply);
pv.addEventListener('click',function(){page--;draw();});
nx.addEventListener('click',function(){page++;draw();});
hs.forEach(function(h){h.addEventListener('click',function(){var k=+h.getAttribute('data-k');
dir=(key===k)?-dir:1;key=k;hs.forEach(function(o){o.removeAttribute('aria-sort');});
h.setAttribute('aria-sort',dir>0?'ascending':'descending');apply();});
h.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();
h.click();}});});
apply();})();""".replace("__PAGE_SIZE__", str(PAGE_SIZE))

_COLUMNS = ("externalId", "name", "action", "outcome", "error code", "reason", "changes")


def script_hash() -> str:
    """The CSP source allowing exactly :data:`TABLE_SCRIPT` (``'sha256-…'``)."""
    digest = hashlib.sha256(TABLE_SCRIPT.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def changes_text(changes: Sequence[tuple[str, str | None, str | None]]) -> str:
    """``attribute: old → new``, one a line (``∅`` for an absent value; extension URNs
    shortened by :func:`~connector.sync.changes.short_attribute`)."""
    from connector.sync.changes import short_attribute

    return "\n".join(
        f"{short_attribute(a)}: {'∅' if o is None else o} → {'∅' if n is None else n}"
        for a, o, n in changes
    )


_DATA_BLOCK = 2000


def _data_json(records: Iterable[RecordRow]) -> Iterator[str]:
    """The rows as one JSON array (the bytes of one ``orjson.dumps``), a block at a time."""
    it = iter(records)
    sep = "["
    while block := list(itertools.islice(it, _DATA_BLOCK)):
        rows = [
            [
                r.external_id,
                r.display_name,
                r.action,
                r.outcome,
                r.error_code or "",
                r.reason or "",
                changes_text(r.changes),
            ]
            for r in block
        ]
        # "<" escaped: no value can end the script block or open a comment in it.
        yield sep + orjson.dumps(rows).decode("utf-8")[1:-1].replace("<", "\\u003c")
        sep = ","
    yield "[]" if sep == "[" else "]"


def build_record_table(records: RecordRows) -> str:
    """The per-record section: controls, an empty table the script fills, the data."""
    return "".join(iter_record_table(records))


def iter_record_table(records: RecordRows) -> Iterator[str]:
    """:func:`build_record_table` in parts (its data a block of records at a time)."""
    head = "".join(f'<th data-k="{i}" tabindex="0">{c}</th>' for i, c in enumerate(_COLUMNS))
    yield (
        f'<section class="wide" id="records"><h2>Records ({len(records)})</h2>'
        '<div class="rt-ctl"><input id="rt-search" type="search" '
        'placeholder="Search id, name, reason, attribute…" aria-label="search records">'
        '<select id="rt-action" aria-label="action"><option value="">every action</option>'
        "</select>"
        '<select id="rt-outcome" aria-label="outcome"><option value="">every outcome</option>'
        "</select>"
        '<button id="rt-prev" type="button">‹ previous</button>'
        '<button id="rt-next" type="button">next ›</button>'
        '<span id="rt-count" class="muted"></span></div>'
        f'<table id="rt"><thead><tr>{head}</tr></thead><tbody id="rt-body"></tbody></table>'
        '<noscript><p class="muted">The table needs JavaScript; every record is in '
        "report.json.</p></noscript>"
        '<script type="application/json" id="rt-data">'
    )
    yield from _data_json(records)
    yield f"</script><script>{TABLE_SCRIPT}</script></section>"

/* The stylesheet and script, served from memory: no CDN, no files to ship. */
#include "web.h"

#include <string.h>

static const char s_css[] =
    ":root{--fg:#1d2733;--muted:#5b6b7c;--bg:#f5f7fa;--card:#fff;--line:#d9e0e8;--accent:#0b5cad;"
    "--ok:#17703c;--warn:#8a5a00;--err:#b3261e;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}"
    "*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg);line-height:1.5}"
    "header.top{display:flex;align-items:center;justify-content:space-between;gap:1rem;flex-wrap:wrap;"
    "padding:.75rem 1.25rem;background:#102a43;color:#fff}"
    "header.top a,header.top button.link{color:#fff;text-decoration:none;margin-left:1rem;font:inherit}"
    ".brand{font-weight:700;font-size:1.2rem;margin-left:0!important}"
    "main{max-width:960px;margin:1.5rem auto;padding:0 1rem}footer{text-align:center;color:var(--muted);"
    "font-size:.85rem;padding:2rem 0}"
    "h1{font-size:1.6rem;margin:.2rem 0 1rem}h2{font-size:1.2rem;margin:1.5rem 0 .5rem}"
    ".card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:1.25rem;margin:0 0 1rem}"
    "label{display:block;font-weight:600;margin:.9rem 0 .25rem}"
    "input[type=text],input[type=url],input[type=password],select,textarea{width:100%;padding:.55rem .6rem;"
    "border:1px solid #b8c4d0;border-radius:6px;font:inherit;background:#fff}"
    "input[readonly]{background:#eef2f6}textarea{min-height:8rem;font-family:ui-monospace,monospace;font-size:.85rem}"
    ".hint{color:var(--muted);font-size:.9rem;margin:.25rem 0}.field-error{color:var(--err);font-size:.9rem;"
    "margin:.25rem 0;font-weight:600}"
    "button,.button{display:inline-block;background:var(--accent);color:#fff;border:0;border-radius:6px;"
    "padding:.55rem 1rem;font:inherit;font-weight:600;cursor:pointer;text-decoration:none;margin-top:1rem}"
    "button.secondary,.button.secondary{background:#e4ebf2;color:var(--fg)}button.danger{background:var(--err)}"
    "button.link{background:none;padding:0;margin:0;font-weight:400;cursor:pointer}"
    "form.inline{display:inline}table{width:100%;border-collapse:collapse;background:var(--card)}"
    "th,td{text-align:left;padding:.5rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}"
    "th{font-size:.85rem;color:var(--muted);font-weight:600}"
    ".notice{padding:.75rem 1rem;border-radius:6px;margin:0 0 1rem;border:1px solid}"
    ".notice.ok{background:#e8f5ee;border-color:#a9d8bb;color:var(--ok)}"
    ".notice.warn{background:#fff6e0;border-color:#ecd08a;color:var(--warn)}"
    ".notice.error{background:#fdecea;border-color:#f1b5af;color:var(--err)}"
    ".badge{display:inline-block;padding:.1rem .5rem;border-radius:999px;font-size:.8rem;background:#e4ebf2}"
    ".badge.ok{background:#e8f5ee;color:var(--ok)}.badge.off{background:#fdecea;color:var(--err)}"
    ".muted{color:var(--muted)}code,pre{font-family:ui-monospace,monospace;font-size:.9rem}"
    "pre{white-space:pre-wrap;word-break:break-all;background:#eef2f6;padding:.75rem;border-radius:6px}"
    ".copy-row{display:flex;gap:.5rem;align-items:center}.copy-row input{flex:1}.copy-row button{margin:0}"
    ".login-list a.button{display:block;text-align:center;margin:.5rem 0}"
    ".js-only{display:none}.js .js-only{display:inline-block}"
    /* Admin section */
    "[hidden]{display:none!important}.js .no-js{display:none}"
    ".banner{display:flex;gap:1rem;align-items:center;justify-content:space-between;flex-wrap:wrap;"
    "background:#fff6e0;border:1px solid #ecd08a;color:#5c3d00;border-radius:8px;padding:.75rem 1rem;margin:0 0 1rem}"
    ".banner a{color:inherit}.banner-action button{margin:0;white-space:nowrap}"
    ".subnav{display:flex;flex-wrap:wrap;border-bottom:1px solid var(--line);margin:0 0 1.25rem}"
    ".subnav a{padding:.5rem .8rem;color:var(--muted);text-decoration:none;border-bottom:3px solid transparent}"
    ".subnav a[aria-current=page]{color:var(--accent);border-color:var(--accent);font-weight:600}"
    ".title-row{display:flex;align-items:center;justify-content:space-between;gap:1rem;flex-wrap:wrap}"
    ".title-row .button{margin:0 0 1rem}.lead{color:var(--muted);margin:-.5rem 0 1rem}"
    ".narrow{max-width:560px;margin-left:auto;margin-right:auto}.small{font-size:.8rem}"
    "#callback-block{border-top:1px solid var(--line);margin-top:1.5rem}"
    ".howto{background:#f0f5fb;border-radius:6px;padding:.1rem 1rem;margin:.75rem 0}"
    ".howto h3{font-size:1rem;margin:.6rem 0 .2rem}.howto ol{margin:.25rem 0 .75rem;padding-left:1.25rem}"
    "details.more{margin:1.25rem 0 0}details.more summary{cursor:pointer;color:var(--accent);font-weight:600}"
    "label.check{display:flex;gap:.5rem;align-items:center;margin:.6rem 0 0}"
    ".actions{display:flex;gap:.5rem;flex-wrap:wrap;align-items:center}.actions .button,.actions button{margin:0}"
    "button.small{padding:.3rem .6rem;font-size:.85rem;margin:.15rem 0}.button.danger{background:var(--err)}"
    ".table-wrap{overflow-x:auto;border:1px solid var(--line);border-radius:8px;margin:0 0 1rem}"
    ".table-wrap table{margin:0}td.url{word-break:break-all}.nowrap{white-space:nowrap}"
    "table.details th{width:13rem}.masked{letter-spacing:.15em}ul.plain{list-style:none;padding:0;margin:0}"
    ".pager{display:flex;gap:1rem;margin:1rem 0}.empty p{margin:.4rem 0}.danger-zone{border-color:#f1b5af}"
    ".card>h2:first-child{margin-top:0}.hint-card{background:#f8fafc}"
    ".applinks,.copy-row input{overflow-wrap:anywhere;min-width:0}"
    "table.audit td:last-child{overflow-wrap:anywhere;min-width:12rem}.row-actions form{display:block}"
    "@media (max-width:600px){header.top nav{width:100%}header.top a{margin:0 1rem 0 0}"
    "th:nth-child(n+4),td:nth-child(n+4){display:none}"
    ".table-wrap th,.table-wrap td{display:table-cell}table.details th{width:auto}}";

/* Progressive enhancement only: every page works without it. */
static const char s_js[] =
    "document.documentElement.classList.add('js');\n"
    "document.addEventListener('click',function(e){var b=e.target.closest('[data-copy]');if(!b)return;\n"
    " var t=document.getElementById(b.getAttribute('data-copy'));if(!t)return;\n"
    " var v=t.value!==undefined?t.value:t.textContent;\n"
    " (navigator.clipboard?navigator.clipboard.writeText(v):Promise.reject()).then(function(){b.textContent='Copied';},"
    "\n"
    "  "
    "function(){t.select&&t.select();document.execCommand&&document.execCommand('copy');b.textContent='Copied';});});\n"
    "document.addEventListener('submit',function(e){var m=e.target.getAttribute('data-confirm');\n"
    " if(m&&!window.confirm(m))e.preventDefault();});\n"
    "(function(){var f=document.getElementById('integration-form');if(!f)return;\n"
    " var base=f.querySelector('[name=base_url]'),out=document.getElementById('callback-block'),\n"
    "  link=document.getElementById('applinks-link'),oauth=f.querySelector('[name=oauth_version]'),\n"
    "  parts=f.querySelectorAll('[data-oauth]');\n"
    " function update(){var v=(base.value||'').trim().replace(/\\/+$/,'');var "
    "ok=/^https?:\\/\\/[^\\s\\/?#@]+(\\/[^\\s?#]*)?$/i.test(v);\n"
    "  "
    "if(out)out.hidden=!ok;if(link&&ok){link.href=v+'/plugins/servlet/applinks/"
    "listApplicationLinks';link.textContent=link.href;}\n"
    "  var o=oauth?oauth.value:'2';for(var "
    "i=0;i<parts.length;i++)parts[i].hidden=parts[i].getAttribute('data-oauth')!==o;}\n"
    " base.addEventListener('input',update);if(oauth)oauth.addEventListener('change',update);update();})();\n";

static void s_asset(web_req_t *r, const char *type, const char *body, size_t len)
{
    web_send(r, 200, type, body, len, "Cache-Control: public, max-age=300\r\n");
}

static void h_css(web_req_t *r)
{
    s_asset(r, "text/css; charset=utf-8", s_css, sizeof s_css - 1);
}
static void h_js(web_req_t *r)
{
    s_asset(r, "text/javascript; charset=utf-8", s_js, sizeof s_js - 1);
}

/* A small mark in the brand colour, so browsers stop asking for a missing icon. */
static const char s_icon[] = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">"
                             "<rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#102a43\"/>"
                             "<path d=\"M4 13V3h5a3 3 0 0 1 0 6H6v4z\" fill=\"#fff\"/></svg>";

static void h_icon(web_req_t *r)
{
    s_asset(r, "image/svg+xml", s_icon, sizeof s_icon - 1);
}

const web_route_t web_static_routes[] = {
    {"GET", "/favicon.ico", false, h_icon, "static"},
    {"GET", "/static/portico.css", false, h_css, "static"},
    {"GET", "/static/portico.js", false, h_js, "static"},
    {0},
};

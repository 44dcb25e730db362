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
    "@media (max-width:600px){header.top nav{width:100%}header.top a{margin:0 1rem 0 0}"
    "th:nth-child(n+4),td:nth-child(n+4){display:none}}";

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
    "  link=document.getElementById('applinks-link'),oauth=f.querySelectorAll('[name=oauth_version]');\n"
    " function update(){var v=(base.value||'').trim().replace(/\\/+$/,'');var "
    "ok=/^https?:\\/\\/[^\\s\\/?#@]+(\\/[^\\s?#]*)?$/i.test(v);\n"
    "  "
    "if(out)out.hidden=!ok;if(link&&ok){link.href=v+'/plugins/servlet/applinks/"
    "listApplicationLinks';link.textContent=link.href;}}\n"
    " base.addEventListener('input',update);for(var "
    "i=0;i<oauth.length;i++)oauth[i].addEventListener('change',update);update();})();\n";

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

const web_route_t web_static_routes[] = {
    {"GET", "/static/portico.css", false, h_css, "static"},
    {"GET", "/static/portico.js", false, h_js, "static"},
    {0},
};

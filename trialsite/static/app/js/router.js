// A tiny router: every path under /app/ is rendered by one screen module, loaded on demand.
const routes = [
  [/^\/app\/?$/, "home"],
  [/^\/app\/enrol\/?$/, "enrol"],
  [/^\/app\/consent\/?$/, "consent"],
  [/^\/app\/survey\/([0-9a-f-]{36})\/?$/, "survey"],
  [/^\/app\/dose\/?$/, "dose"],
  [/^\/app\/kit\/?$/, "kit"],
  [/^\/app\/side-effect\/?$/, "side_effect"],
  [/^\/app\/withdraw\/?$/, "withdraw"],
  [/^\/app\/settings\/?$/, "settings"],
];

let guard = async () => null;
let current = 0;

export function setGuard(fn) {
  guard = fn;
}

export function match(pathname) {
  for (const [pattern, name] of routes) {
    const m = pathname.match(pattern);
    if (m) return { name, params: m.slice(1) };
  }
  return { name: "home", params: [] };
}

export async function render() {
  const ticket = ++current;
  let route = match(location.pathname);
  const redirect = await guard(route);
  if (redirect && redirect !== location.pathname) {
    history.replaceState(null, "", redirect);
    route = match(redirect);
  }
  const module = await import(`./screens/${route.name}.js`);
  if (ticket !== current) return;
  await module.render(...route.params);
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  return render();
}

export function start() {
  window.addEventListener("popstate", render);
  document.addEventListener("click", (event) => {
    const a = event.target.closest("a[data-link]");
    if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey) return;
    event.preventDefault();
    navigate(a.getAttribute("href"));
  });
  return render();
}

// Start: who is signed in, then the page the address names; the hash changes the page.

window.addEventListener('hashchange', navigate);
loadMe().then(navigate);

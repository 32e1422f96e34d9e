// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Helpers for logout tests: walk the provider's RP-initiated logout page
// (the confirmation form of test/provider/provider.js) the way a browser does.

import { decodeEntities } from './client.js';

/**
 * GET `endSessionUrl` at the provider with `client` (a cross-site navigation
 * when it comes from the site's redirect), then confirm "Yes, sign me out".
 * Returns { page, confirm, redirect } (redirect: the absolute URL the
 * provider sends the browser to afterwards, or null). Throws if the provider
 * rejected the request (its error page) or did not show the form.
 */
export async function confirmProviderLogout(client, endSessionUrl, { crossSite = true } = {}) {
    const page = await client.get(endSessionUrl, { crossSite });
    if (page.status !== 200) {
        throw new Error(`end_session answered ${page.status}: ${page.body.slice(0, 400)}`);
    }
    const form = /<form\b[^>]*id="op\.logoutForm"[^>]*>([\s\S]*?)<\/form>/i.exec(page.body);
    if (!form) throw new Error(`no logout form at the provider: ${page.body.slice(0, 400)}`);
    const action = /action="([^"]*)"/i.exec(form[0]);
    const xsrf = /name="xsrf"\s+value="([^"]*)"/i.exec(form[1]);
    if (!action || !xsrf) throw new Error(`logout form without action/xsrf: ${form[0]}`);
    const confirmUrl = new URL(decodeEntities(action[1]), endSessionUrl).href;
    const confirm = await client.post(confirmUrl, { xsrf: decodeEntities(xsrf[1]), logout: 'yes' },
        { crossSite: false });
    return { page, confirm, redirect: confirm.location };
}

// Embedded Signup (v4) on Settings → WhatsApp numbers. Meta's SDK opens the signup; its window tells us
// (postMessage WA_EMBEDDED_SIGNUP) which number and account the customer shared, FB.login's callback gives
// the code; both go to the server, which does everything else with the Graph API.
(function () {
  "use strict";
  const root = document.getElementById("embedded-signup");
  if (!root) return;
  const button = root.querySelector("[data-signup-start]");
  const status = root.querySelector("[data-signup-status]");
  const csrf = root.querySelector("input[name=csrfmiddlewaretoken]");
  let session = null; // {phone_number_id, waba_id} from FINISH
  let code = null;

  function say(text) {
    status.textContent = text;
  }

  function fromFacebook(origin) {
    try {
      const host = new URL(origin).hostname;
      return host === "facebook.com" || host.endsWith(".facebook.com");
    } catch (_) {
      return false;
    }
  }

  window.addEventListener("message", function (event) {
    if (!fromFacebook(event.origin)) return;
    let data = event.data;
    if (typeof data === "string") {
      try {
        data = JSON.parse(data);
      } catch (_) {
        return;
      }
    }
    if (!data || data.type !== "WA_EMBEDDED_SIGNUP") return;
    const info = data.data || {};
    if (String(data.event).indexOf("FINISH") === 0) {
      session = { phone_number_id: String(info.phone_number_id || ""), waba_id: String(info.waba_id || "") };
      complete();
    } else if (data.event === "CANCEL") {
      say("Signup cancelled" + (info.current_step ? " at step " + info.current_step : "") + ". Nothing was connected.");
      button.disabled = false;
    } else if (data.event === "ERROR") {
      say("Meta reported an error: " + (info.error_message || "unknown") + ". Nothing was connected.");
      button.disabled = false;
    }
  });

  // Both the code (FB.login) and the ids (the message) are needed; either may arrive first.
  function complete() {
    if (!session || !code) return;
    if (!session.phone_number_id || !session.waba_id) {
      say("The signup finished without a phone number: add a number to the account and try again.");
      button.disabled = false;
      return;
    }
    say("Connecting the number…");
    const body = new URLSearchParams({ code: code, phone_number_id: session.phone_number_id, waba_id: session.waba_id });
    code = null;
    fetch(root.dataset.completeUrl, {
      method: "POST",
      headers: { "X-CSRFToken": csrf ? csrf.value : "", "Content-Type": "application/x-www-form-urlencoded" },
      body: body,
      credentials: "same-origin",
    })
      .then(function (response) {
        return response.json().then(function (data) {
          if (response.ok && data.ok) {
            window.location.assign(data.redirect);
          } else {
            const error = (data && data.error) || {};
            say((error.message || "The number could not be connected.") + " [" + (error.code || response.status) + "]");
            button.disabled = false;
          }
        });
      })
      .catch(function () {
        say("The server could not be reached: try again.");
        button.disabled = false;
      });
  }

  window.fbAsyncInit = function () {
    window.FB.init({ appId: root.dataset.appId, autoLogAppEvents: true, xfbml: true, version: root.dataset.graphVersion });
  };
  const sdk = document.createElement("script");
  sdk.src = root.dataset.sdkUrl;
  sdk.async = true;
  sdk.defer = true;
  sdk.crossOrigin = "anonymous";
  document.head.appendChild(sdk);

  button.addEventListener("click", function () {
    if (!window.FB) {
      say("Meta's SDK has not loaded (blocked or offline): connect with a token below.");
      return;
    }
    button.disabled = true;
    say("Finish the signup in Meta's window…");
    window.FB.login(
      function (response) {
        if (response.authResponse && response.authResponse.code) {
          code = response.authResponse.code;
          complete();
        } else {
          say("The signup was closed before it finished. Nothing was connected.");
          button.disabled = false;
        }
      },
      {
        config_id: root.dataset.configId,
        response_type: "code",
        override_default_response_type: true,
        extras: { setup: {}, featureType: "", sessionInfoVersion: "3" },
      }
    );
  });
})();

// Kept out of the page so the Content-Security-Policy can refuse every inline script.
new DKFDS.Navigation().init();

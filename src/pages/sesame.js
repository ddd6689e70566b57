// Copies the text of the element named by a button's data-copy attribute.
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  button.addEventListener("click", function () {
    var field = document.getElementById(button.dataset.copy);
    field.select();
    if (navigator.clipboard) {
      navigator.clipboard.writeText(field.value).then(function () {
        button.textContent = "Copied";
      });
    } else {
      document.execCommand("copy");
      button.textContent = "Copied";
    }
  });
});

"sha256-Ly+oOm08frLHeeBwlHMdQ1aAlFyEh/2KZOXzH2NzSaI="

"sha256-8By3Pez/ml6fLEccokcGEhlM+pmzpG/dDzuJX1j/3R0="
